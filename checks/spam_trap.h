// checks/spam_trap.h: spam traps (greylist.trap_recipients, issue 18), as spamd's greytrapping:
// addresses nobody uses, published where only harvesters find them. A client that sends a RCPT
// to one is banned at once (proxy/abuse.h), in the dialogue and through the policy service.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "checks/finding.h"
#include "protocol/address.h"

namespace mxscreen::checks {

// The trap list as configured, compared without regard to case.
class TrapRecipients {
 public:
  TrapRecipients() = default;
  explicit TrapRecipients(const std::vector<std::string>& addresses);

  bool empty() const { return addresses_.empty(); }
  // `recipient` (the RCPT address, without <>) is a trap.
  bool is_trap(std::string_view recipient) const;

 private:
  std::vector<std::string> addresses_;  // lower case
};

// The reply to the trap RCPT: the ban is stored, the session ends (Postfix disconnects too).
std::string trap_reply(const protocol::IpAddress& client);

// A RCPT to a trap: the TRAP line and mxscreen_trap_hits_total, then the ban ("spam trap <rcpt>")
// and trap_reply. `who` is "[ip]:port" in the dialogue (the envelope is added), the client and
// envelope on the policy service (`policy`).
Finding trap_finding(const protocol::IpAddress& client, std::string_view who,
                     std::string_view sender, std::string_view recipient, bool policy);

}  // namespace mxscreen::checks
