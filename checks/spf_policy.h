// checks/spf_policy.h: what mxscreen does with an SPF finding (checks/spf.h), in
// postfix-policyd-spf's terms: sender.spf = off | log | reject_fail | reject_fail_softfail.
// Only "fail" (and, when asked, "softfail") is refused, with 550 5.7.23 (RFC 7372's code for an
// SPF validation failure); none, neutral, temperror and permerror are logged and let through,
// as policyd-spf's defaults do (a DNS hiccup must not bounce mail; greylisting still applies).
// Also the Received-SPF-style facts (RFC 7208 9.1) for the log line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "checks/finding.h"
#include "checks/spf.h"

namespace mxscreen::checks {

enum class SpfMode : uint8_t { kOff, kLog, kRejectFail, kRejectFailSoftfail };

std::string_view to_string(SpfMode mode);

// Whether `finding` is refused under `mode`.
bool spf_rejects(const SpfFinding& finding, SpfMode mode);

// The reply text (without CRLF) for a refused finding, e.g. "550 5.7.23 <a@example.org>:
// Sender address rejected: Message rejected due to: SPF fail - not authorized. <exp text>";
// the domain's explanation is shown as printable ASCII, at most kSpfExplanationShown bytes.
inline constexpr std::size_t kSpfExplanationShown = 200;
std::string spf_reject_reply(const SpfFinding& finding, std::string_view sender);
// The same words as a Postfix policy action ("550 5.7.23 Message rejected due to: ...");
// Postfix adds "<rcpt>: Recipient address rejected:".
std::string spf_policy_action(const SpfFinding& finding);

// Received-SPF's key=value facts (RFC 7208 9.1), client-supplied text escaped:
// `identity=mailfrom; client-ip=192.0.2.7; helo=mx.example.org; envelope-from=<a@example.org>;
// receiver=mx.example.net; domain=example.org; mechanism=include:_spf.example.org`
// (and problem="..." for errors).
std::string spf_log_facts(const SpfFinding& finding, const SpfRequest& request);

// The SPF line ("SPF <result> <who>: <facts>; action=reject|accept (<side>)") and
// mxscreen_spf_total for a finding; `side` is "session" or "policy".
Finding spf_report(const SpfFinding& finding, const SpfRequest& request, std::string_view who,
                   std::string_view side, bool rejected);
// At the RCPT that would hand off: a refused sender's RCPT gets spf_reject_reply (a NOQUEUE line
// naming the test spf); anything else goes on.
Finding spf_rcpt_finding(const SpfFinding& finding, SpfMode mode, std::string_view sender);

}  // namespace mxscreen::checks
