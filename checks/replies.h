// checks/replies.h: the replies mxscreen gives in its own name that no single test owns: its
// greeting, its own trouble (busy, backend gone, shutting down) and a pregreet drop, in
// postscreen's words. Tests' replies sit beside their decisions (checks/access, limits, ban,
// dnsbl, greylist, rdns, spf_policy, spam_trap). No client bytes in any of them; the session
// adds CRLF.
#pragma once

#include <string>
#include <string_view>

namespace mxscreen::checks::replies {

// Every session slot, or every backend slot with the queue full, is taken (postscreen's text).
inline constexpr std::string_view kAllPortsBusy = "421 4.3.2 All server ports are busy";
// The backend failed the handoff, or the fake MX answers a real MTA's first try.
inline constexpr std::string_view kServiceUnavailable = "421 4.3.2 Service temporarily unavailable";
// Drain: a session still in mxscreen's own dialogue when the process stops.
inline constexpr std::string_view kShuttingDown = "421 4.3.2 Service shutting down";
// postscreen_greet_action = drop: the client talked before its turn.
inline constexpr std::string_view kPregreetDrop = "521 5.5.1 Protocol error";

// The 220 greeting: "220-banner" opens the multi-line greeting of the greet wait, "220 banner"
// is the one-line greeting (or the last line).
inline std::string greeting(std::string_view banner, bool more_lines_follow = false) {
  std::string line(more_lines_follow ? "220-" : "220 ");
  line += banner;
  return line;
}

}  // namespace mxscreen::checks::replies
