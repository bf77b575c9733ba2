// checks/fake_mx.h: the fake MX (nolisting, DESIGN.md "Fake MX"): what a client that connects to
// the decoy MX address is told (fake_mx.action), and the nolisting pass of a client that tried
// the fake MX first and then the real one. Recording the hits and the ban that follows a client
// that only ever comes to the fake MX (checks/ban.h fake_mx_ban_due) is proxy/'s I/O.
#pragma once

#include <cstdint>
#include <string_view>

#include "checks/finding.h"

namespace mxscreen::checks {

// fake_mx.action: reset = looks like a closed port (every real MTA goes on to the next MX);
// tempfail = 421 at once; tempfail_rcpt = talk, then 450 at every RCPT (the classic Postfix
// recipe; the dialogue's DialoguePolicy::tempfail_rcpt).
enum class FakeMxAction : uint8_t { kReset, kTempfail, kTempfailRcpt };

// A connection to the fake MX (`who` is "[ip]:port", `action_name` the action's config word):
// the FAKE-MX line and mxscreen_fake_mx_hits_total. The session records the hit, then applies
// fake_mx_action_finding.
Finding fake_mx_hit(std::string_view action_name, std::string_view who);
// What the client is told: reset, 421 and close, or the dialogue (kContinue).
Finding fake_mx_action_finding(FakeMxAction action);
// A client that came to the fake MX first, then to the real one, within fake_mx.pair_window.
Finding nolisting_pass_finding(std::string_view who);

}  // namespace mxscreen::checks
