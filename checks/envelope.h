// checks/envelope.h: sender and recipient address checks (reject_non_fqdn_sender,
// reject_non_fqdn_recipient), answered at RCPT as Postfix does.
#pragma once

#include <optional>
#include <string>

#include "protocol/smtp_command.h"

namespace mxscreen::checks {

std::optional<std::string> sender_reject_reply(const protocol::Path& sender, bool reject_non_fqdn);
std::optional<std::string> recipient_reject_reply(const protocol::Path& recipient,
                                                  bool reject_non_fqdn);

}  // namespace mxscreen::checks
