// protocol/ehlo.h: the EHLO capability model. mxscreen answers EHLO itself before handoff and
// offers what the backend offers, minus what it cannot honour before handoff: AUTH (refused
// on an MX port), XCLIENT/XFORWARD (for mxscreen only), STARTTLS (mxscreen's own, added by the
// dialogue when [tls] is set up), and PIPELINING while the pipelining test runs.
#pragma once

#include <string>
#include <vector>

namespace mxscreen::protocol {

// Keywords (with parameters) from a backend's EHLO reply lines, the greeting line excluded.
std::vector<std::string> mirror_capabilities(const std::vector<std::string>& backend_lines,
                                             bool withhold_pipelining);

// Whether an EHLO reply (greeting line first) offers `keyword` ("STARTTLS"), in any case.
bool ehlo_offers(const std::vector<std::string>& lines, const std::string& keyword);

// What mxscreen offers before it has heard from the backend (Postfix's usual list).
std::vector<std::string> default_capabilities(bool withhold_pipelining);

}  // namespace mxscreen::protocol
