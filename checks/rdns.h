// checks/rdns.h: reverse DNS tests of the client, Postfix's
// reject_unknown_reverse_client_hostname (no PTR at all) and reject_unknown_client_hostname
// (the PTR name's A/AAAA do not lead back to the client). A DNS failure gives 450, a proven
// absence 550, with Postfix's texts; answered at RCPT as with smtpd_delay_reject = yes.
#pragma once

#include <optional>
#include <string>

namespace mxscreen::checks {

// The facts the session gathered; kPending counts as a temporary failure.
enum class PtrFact { kPending, kFound, kNone, kTempFail };
enum class FcrdnsFact { kPending, kConfirmed, kMismatch, kNoPtr, kTempFail };

struct RdnsPolicy {
  bool reject_unknown_reverse = false;
  bool reject_unknown = false;
};

std::optional<std::string> rdns_reject_reply(PtrFact ptr, FcrdnsFact fcrdns,
                                             const std::string& client_address,
                                             const RdnsPolicy& policy);

}  // namespace mxscreen::checks
