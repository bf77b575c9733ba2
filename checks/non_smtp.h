// checks/non_smtp.h: the non-SMTP command test (postscreen_non_smtp_command_enable): HTTP
// requests, proxy CONNECTs, POP-style USER/PASS and header-like lines sent to port 25 come
// from open proxies and scanners.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "checks/verdict.h"

namespace mxscreen::checks {

// postscreen_forbidden_commands' default, plus the POP verbs.
const std::vector<std::string>& default_forbidden_commands();

Verdict non_smtp_verdict(Action action, std::string_view line,
                         const std::vector<std::string>& forbidden_commands);

}  // namespace mxscreen::checks
