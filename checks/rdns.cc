// checks/rdns.cc: see rdns.h.
#include "checks/rdns.h"

namespace mxscreen::checks {

std::optional<std::string> rdns_reject_reply(PtrFact ptr, FcrdnsFact fcrdns,
                                             const std::string& client_address,
                                             const RdnsPolicy& policy) {
  if (policy.reject_unknown_reverse && ptr != PtrFact::kFound) {
    bool temporary = ptr != PtrFact::kNone;
    return std::string(temporary ? "450 4.7.25" : "550 5.7.25") +
           " Client host rejected: cannot find your reverse hostname, [" + client_address + "]";
  }
  if (policy.reject_unknown && fcrdns != FcrdnsFact::kConfirmed) {
    bool temporary = fcrdns == FcrdnsFact::kPending || fcrdns == FcrdnsFact::kTempFail;
    return std::string(temporary ? "450 4.7.25" : "550 5.7.25") +
           " Client host rejected: cannot find your hostname, [" + client_address + "]";
  }
  return std::nullopt;
}

}  // namespace mxscreen::checks
