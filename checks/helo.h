// checks/helo.h: HELO/EHLO hostname checks (reject_invalid_helo_hostname,
// reject_non_fqdn_helo_hostname). As with Postfix's smtpd_delay_reject = yes, a failed check
// is answered at RCPT time, so the log shows the envelope.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mxscreen::checks {

struct HeloPolicy {
  bool reject_invalid = true;
  bool reject_non_fqdn = true;
};

// The reply for a HELO name that fails a check, or nullopt when it passes.
std::optional<std::string> helo_reject_reply(std::string_view helo, const HeloPolicy& policy);

}  // namespace mxscreen::checks
