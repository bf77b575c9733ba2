// checks/envelope.h: sender and recipient address checks (reject_non_fqdn_sender,
// reject_non_fqdn_recipient), answered at RCPT as Postfix does.
#pragma once

#include <optional>
#include <string>

#include "protocol/smtp_command.h"

namespace mxscreen::checks {

// The reply to a MAIL FROM or RCPT TO whose address does not parse (`why`: the parser's
// "5.x.y text"): 553 for an undeclared 8-bit address (RFC 6531 3.7.4.1), else 501, as Postfix.
std::string address_syntax_reply(const std::string& why);

std::optional<std::string> sender_reject_reply(const protocol::Path& sender, bool reject_non_fqdn);
std::optional<std::string> recipient_reject_reply(const protocol::Path& recipient,
                                                  bool reject_non_fqdn);

}  // namespace mxscreen::checks
