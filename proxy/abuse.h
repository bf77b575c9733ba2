// proxy/abuse.h: bans in the state store, shared by the sessions (session_abuse.cc) and the
// admin socket (control.cc). A client is its address, an IPv6 client its ban.ipv6_prefix
// network ("2001:db8:1:2::/64"). Keys: "ban:<client>" holds "until:reason" with the ban's TTL,
// "banc:<client>" counts bans for the escalation. The ban record is created with put_if, so
// of the sessions (workers, hosts) racing to ban one client exactly one bans it.
// ban.command / ban.unban_command run on each ban and unban made here.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "checks/ban.h"
#include "protocol/address.h"
#include "proxy/command_runner.h"
#include "proxy/config.h"
#include "proxy/store.h"

namespace mxscreen::proxy {

checks::BanPolicy ban_policy(const BanConfig& config);
// A store TTL from a config duration: whole seconds, at least one.
std::chrono::seconds ttl_seconds(std::chrono::milliseconds ms);

struct BanEntry {
  std::string address;
  checks::BanRecord record;
};

class Bans {
 public:
  using ConfigSource = std::function<const Config&()>;  // the current config (reloads)
  using BannedCallback = std::function<void(StoreStatus, std::chrono::seconds length)>;
  using ListCallback = std::function<void(StoreStatus, std::vector<BanEntry>)>;

  static constexpr std::size_t kMaxListed = 10000;

  Bans(uv_loop_t* loop, Store& store, ConfigSource config);

  // The client as bans, strikes and fake-MX records know it: protocol::client_identity()
  // with ban.ipv6_prefix.
  std::string identity(const protocol::IpAddress& client) const;
  // "prefix" + identity(): the store key of one client ("ban:", "strike:", "fmx:", ...).
  std::string key(std::string_view prefix, const protocol::IpAddress& client) const;

  // Bans `client` for the escalated ban time unless it is banned already (then `done` gets
  // kConflict and nothing is logged), or for `fixed` when it is given (the admin's ban replaces
  // any other). Logs BANNED with `reason`; counts mxscreen_bans_total{trigger} ("fake_mx",
  // "strikes", "admin", "trap").
  void ban(const protocol::IpAddress& client, std::string_view trigger, const std::string& reason,
           std::chrono::seconds fixed = std::chrono::seconds(0), BannedCallback done = {});
  // Lifts the ban and forgets the client's strikes and fake-MX hits. Logs UNBAN.
  void unban(const protocol::IpAddress& client, Store::StatusCallback done = {});
  // Live bans, soonest to end first, at most kMaxListed.
  void list(ListCallback cb);

 private:
  // Logs, counts and runs ban.command for a ban just stored.
  void banned(const std::string& client, std::string_view trigger, const std::string& reason,
              std::chrono::seconds length);

  Store& store_;
  ConfigSource config_;
  CommandRunner commands_;
};

}  // namespace mxscreen::proxy
