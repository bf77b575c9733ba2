// proxy/deploy_lint.h: `mxscreen --check-config` looks past the file at the deployment it
// describes (issue 19), read-only, and warns (never fails) when what it finds would break
// mail: the backend answers; it accepts the configured handoff (a PROXY header, or XCLIENT,
// for a loopback client) as a real handoff begins it; it offers STARTTLS when [tls] is set
// (backend_starttls_warning); and, with the policy service on and Postfix on this host, Postfix's
// smtpd_recipient_restrictions (read with `postconf`, master.cf overrides first) ask it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config.h"

namespace mxscreen::proxy {

// Opens one backend session as the handoff would (PROXY header / XCLIENT for 127.0.0.1 or ::1),
// EHLO, QUIT. The warnings, "" for none.
std::vector<std::string> backend_handoff_warnings(const Config& config);

// Whether `restrictions` (a smtpd_recipient_restrictions value, commas or spaces between
// words, `{ ... }` groups) has check_policy_service at `listen`. The warning, or "".
std::string policy_restriction_warning(std::string_view restrictions,
                                       const protocol::Endpoint& listen, std::string_view where);

// The postconf check (policy.listen set and the backend on a loopback address): runs
// `postconf [-c postfix_config_dir] -P` and `-h smtpd_recipient_restrictions` (read-only) and
// judges the value the backend's service uses. Warnings, or none.
// `postconf`: the program to run ("" = found in /usr/sbin and the like).
std::vector<std::string> postfix_policy_warnings(const Config& config,
                                                 const std::string& postfix_config_dir,
                                                 std::string postconf = "");

// The value the service listening on `backend` uses: its master.cf `-o` override from
// `postconf -P` output ("service/type/parameter = value" lines), else nullopt.
std::optional<std::string> service_override(std::string_view postconf_p_output,
                                            const protocol::Endpoint& backend,
                                            std::string_view parameter);

}  // namespace mxscreen::proxy
