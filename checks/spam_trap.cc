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

Finding trap_finding(const protocol::IpAddress& client, std::string_view who,
                     std::string_view sender, std::string_view recipient, bool policy) {
  const std::string rcpt = protocol::printable(recipient, 255);
  Finding f;
  f.test = "trap";
  f.outcome = "ban";
  f.word = "TRAP";
  f.warning = true;
  f.detail.append("TRAP ").append(who);
  if (policy) {
    f.detail += ": spam trap recipient; banning the client (policy)";
    f.fields = {{"side", "policy"}};
    f.labels = "side=\"policy\"";
  } else {
    f.detail.append(" from=<")
        .append(protocol::printable(sender, 255))
        .append("> to=<")
        .append(rcpt)
        .append(">: spam trap recipient; banning the client");
    f.fields = {{"recipient", rcpt}};
    f.labels = "side=\"dialogue\"";
  }
  f.counter = "mxscreen_trap_hits_total";
  f.ban = "spam trap <" + rcpt + ">";
  return f.closes(Finding::Then::kBanAndClose, trap_reply(client));
}

}  // namespace mxscreen::checks
