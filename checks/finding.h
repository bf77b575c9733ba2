// checks/finding.h: what a check says about a client, in one shape for every test (issue 17):
// which test, its outcome, the log line, the counter, the reply and what happens next. A check
// composes it from facts, so every reply text and log line is written in checks/ and can be
// unit-tested; the session applies it in one place (Session::apply: log, count, strike, reply,
// close) and the policy service reports it (proxy/report_finding).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxscreen::checks {

// A field of the JSON log line after "event" (the same type as proxy's LogField).
using FindingField = std::pair<std::string_view, std::string>;

struct Finding {
  // What the session does once the finding is logged and counted.
  enum class Then : uint8_t {
    kContinue,    // nothing more: a pass, an ignored hit, a fact for later
    kAllowlist,   // a DNSWL listing: the client skips every further test
    kEnforce,     // carry on, but every RCPT gets `reply` ("" = the dialogue's own 550)
    kRejectRcpt,  // the held RCPT gets `reply` and a NOQUEUE line naming `test`; go on talking
    kDeferRcpt,   // the held RCPT gets `reply` (greylisting's 450), an error reply; go on talking
    kReplyAndClose,  // `reply`, then close: the session's outcome is `test`
    kClose,          // close without a word: the session's outcome is `test`
    kReset,          // TCP reset, as a closed port looks: the session's outcome is `test`
    kBanAndClose,    // ban the client (kind `test`, reason `ban`), then `reply` and close
  };

  // The plan row's name (plan.cc) for a screening test; for the connect decision and the
  // dialogue's own limits the word that is also the session's outcome (denylisted, banned,
  // client_limit, busy, fake_mx, trap, errors, command_count, quit, ...).
  std::string test;
  std::string outcome;  // pass, ignore, enforce, drop, reject, allowlist, ...
  // One SMTP reply line without CRLF (the session adds it); "" = none. A policy service
  // finding holds the Postfix access(5) action instead ("521 5.7.1 ...", "DUNNO").
  std::string reply;
  std::string word;      // the log word; "" = no log line
  std::string detail;    // the whole log line, client-supplied text already escaped
  bool warning = false;  // logged as a warning
  // The JSON log line's fields: "client" (the client's address, added by whoever logs it)
  // unless client_field is false, then these.
  bool client_field = true;
  std::vector<FindingField> fields;
  std::string_view counter;  // the metric counted once ("mxscreen_..."); "" = none
  std::string labels;        // its labels, label-safe words only: test="dnsbl",outcome="drop"
  std::string strike;        // a strike toward a ban (ban.max_retry) with this reason; "" = none
  std::string ban;           // kBanAndClose: the ban's reason
  Then then = Then::kContinue;

  // The session is over once this finding is applied.
  bool ends_session() const;
  // A hit that ends the session: `then` and `reply`, and a strike when the plan says a hit of
  // `test` is one (Plan::is_strike).
  Finding& closes(Then how, std::string reply_line = {});
  // Counts mxscreen_test_results_total{test, outcome} (the counter of the screening tests).
  Finding& counted_as_test_result();
};

inline constexpr std::string_view kTestResults = "mxscreen_test_results_total";

// "%.2f" seconds, as the log lines write a duration.
std::string format_seconds(double seconds);

}  // namespace mxscreen::checks
