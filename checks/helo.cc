// checks/helo.cc: see helo.h. Reply texts are Postfix's.
#include "checks/helo.h"

#include "protocol/escape.h"
#include "protocol/smtp_command.h"

namespace mxscreen::checks {

std::optional<std::string> helo_reject_reply(std::string_view helo, const HeloPolicy& policy,
                                             const HeloFacts& /*facts*/) {
  std::string shown = protocol::printable(helo, 255);
  if (policy.reject_invalid && !protocol::is_valid_helo(helo)) {
    return "501 5.5.2 <" + shown + ">: Helo command rejected: Invalid name";
  }
  if (policy.reject_non_fqdn && !protocol::is_fqdn(helo)) {
    return "504 5.5.2 <" + shown + ">: Helo command rejected: need fully-qualified hostname";
  }
  return std::nullopt;
}

}  // namespace mxscreen::checks
