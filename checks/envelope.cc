// checks/envelope.cc: see envelope.h. Reply texts are Postfix's.
#include "checks/envelope.h"

#include "protocol/escape.h"

namespace mxscreen::checks {

std::string address_syntax_reply(const std::string& why) {
  return (why.rfind("5.6.7", 0) == 0 ? "553 " : "501 ") + why;
}

std::optional<std::string> sender_reject_reply(const protocol::Path& sender, bool reject_non_fqdn) {
  if (reject_non_fqdn && !sender.null_path && !protocol::is_fqdn_address(sender)) {
    return "504 5.5.2 <" + protocol::printable(sender.address, 255) +
           ">: Sender address rejected: need fully-qualified address";
  }
  return std::nullopt;
}

std::optional<std::string> recipient_reject_reply(const protocol::Path& recipient,
                                                  bool reject_non_fqdn) {
  if (reject_non_fqdn && !protocol::is_fqdn_address(recipient)) {
    return "504 5.5.2 <" + protocol::printable(recipient.address, 255) +
           ">: Recipient address rejected: need fully-qualified address";
  }
  return std::nullopt;
}

}  // namespace mxscreen::checks
