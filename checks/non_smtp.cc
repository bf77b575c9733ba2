// checks/non_smtp.cc: see non_smtp.h.
#include "checks/non_smtp.h"

#include "protocol/smtp_command.h"

namespace mxscreen::checks {

const std::vector<std::string>& default_forbidden_commands() {
  static const std::vector<std::string> kDefault = {"CONNECT", "GET", "POST", "USER", "PASS"};
  return kDefault;
}

Verdict non_smtp_verdict(Action action, std::string_view line,
                         const std::vector<std::string>& forbidden_commands) {
  return verdict_for(action, protocol::is_non_smtp_command(line, forbidden_commands),
                     "non-SMTP command");
}

}  // namespace mxscreen::checks
