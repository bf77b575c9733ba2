// checks/spam_trap.cc: see spam_trap.h.
#include "checks/spam_trap.h"

#include <algorithm>

#include "protocol/escape.h"

namespace mxscreen::checks {

TrapRecipients::TrapRecipients(const std::vector<std::string>& addresses) {
  for (const auto& a : addresses) addresses_.push_back(protocol::ascii_lower(a));
}

bool TrapRecipients::is_trap(std::string_view recipient) const {
  if (addresses_.empty() || recipient.empty()) return false;
  std::string lower = protocol::ascii_lower(recipient);
  return std::find(addresses_.begin(), addresses_.end(), lower) != addresses_.end();
}

std::string trap_reply(const protocol::IpAddress& client) {
  return "521 5.7.1 Service unavailable; client [" + client.to_string() + "] is banned";
}

}  // namespace mxscreen::checks
