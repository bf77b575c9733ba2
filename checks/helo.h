// checks/helo.h: HELO/EHLO hostname checks (reject_invalid_helo_hostname,
// reject_non_fqdn_helo_hostname, and the "You are not me" check_helo_access rule that refuses
// this host's own name or address as a client's HELO). As with Postfix's smtpd_delay_reject = yes,
// a failed check is answered at RCPT time, so the log shows the envelope. The [helo] switches of
// these checks are this policy itself (proxy/config.h's HeloConfig and the plan's settings hold
// one), so a new HELO check adds its switch here and its row to the plan, and nothing in between.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address.h"

namespace mxscreen::checks {

struct HeloPolicy {
  bool reject_invalid = true;
  bool reject_non_fqdn = true;
  // helo.reject_own_name: the HELO is this host's name (server.hostname, case-insensitive, a
  // trailing dot ignored) or an address literal of one of its addresses, the classic bot tell
  // Postfix admins refuse with check_helo_access ("REJECT You are not me"): 554 5.7.1.
  bool reject_own_name = false;
};

// What a HELO check may compare the name with besides the policy: this host's own name and
// addresses (the session's local address, the addresses mxscreen listens on).
struct HeloFacts {
  std::string hostname;                            // server.hostname
  std::vector<protocol::IpAddress> own_addresses;  // no wildcard (0.0.0.0, ::) among them
};

// Whether `a` belongs among facts.own_addresses and is not there yet: not a wildcard (0.0.0.0,
// ::, a listener on every address), not already listed.
bool new_own_address(const HeloFacts& facts, const protocol::IpAddress& a);

// The reply for a HELO name that fails a check, or nullopt when it passes.
std::optional<std::string> helo_reject_reply(std::string_view helo, const HeloPolicy& policy,
                                             const HeloFacts& facts);

}  // namespace mxscreen::checks
