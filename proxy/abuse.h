// proxy/abuse.h: bans in the state store, for sessions (session_abuse.cc) and the admin
// socket alike.
#pragma once

#include <chrono>
#include <string>

#include "checks/ban.h"
#include "protocol/address.h"
#include "proxy/config.h"
#include "proxy/store.h"

namespace mxscreen::proxy {

checks::BanPolicy ban_policy(const BanConfig& config);
// Bans `client` for the escalated ban time, or for `fixed` when it is given.
void ban_client(Store& store, const protocol::IpAddress& client, const std::string& reason,
                const checks::BanPolicy& policy,
                std::chrono::seconds fixed = std::chrono::seconds(0));
void unban_client(Store& store, const protocol::IpAddress& client);

}  // namespace mxscreen::proxy
