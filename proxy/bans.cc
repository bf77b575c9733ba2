// proxy/bans.cc: see abuse.h.
#include <algorithm>
#include <memory>

#include "proxy/abuse.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
std::chrono::seconds ttl_seconds(std::chrono::milliseconds ms) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(ms);
  return s.count() > 0 ? s : std::chrono::seconds(1);
}

checks::BanPolicy ban_policy(const BanConfig& c) {
  return {ttl_seconds(c.ban_time), ttl_seconds(c.max_ban_time), c.max_retry,
          ttl_seconds(c.find_time)};
}

std::string client_key(const char* prefix, const protocol::IpAddress& client) {
  return std::string(prefix) + client.to_string();
}

Bans::Bans(uv_loop_t* loop, Store& store, ConfigSource config)
    : store_(store), config_(std::move(config)), commands_(loop) {}

void Bans::ban(const protocol::IpAddress& client, std::string_view trigger,
               const std::string& reason, std::chrono::seconds fixed, BannedCallback done) {
  auto policy = ban_policy(config_().ban);
  // How often this client was banned before decides the length (escalation).
  store_.increment(client_key("banc:", client), 1, policy.max_ban_time * 4,
                   [this, client, trigger = std::string(trigger), reason, policy, fixed, done](
                       StoreStatus st, int64_t n) {
                     auto length =
                         fixed.count() > 0
                             ? fixed
                             : checks::ban_duration(st == StoreStatus::kOk ? n - 1 : 0, policy);
                     checks::BanRecord record{wall_clock_seconds() + length.count(), reason};
                     store_.put(client_key("ban:", client), record.to_string(), length,
                                [this, client, trigger, reason, length, done](StoreStatus status) {
                                  const std::string address = client.to_string();
                                  if (status != StoreStatus::kOk) {
                                    Log::warning("cannot ban [" + address + "]: state store " +
                                                 std::string(to_string(status)));
                                    if (done) done(status, length);
                                    return;
                                  }
                                  Log::event(LogLevel::kWarning, "BANNED",
                                             "BANNED [" + address + "] for " +
                                                 std::to_string(length.count()) + "s: " + reason,
                                             {{"client", address}, {"reason", reason}});
                                  metrics().inc("mxscreen_bans_total",
                                                "trigger=\"" + label_value(trigger) + "\"");
                                  const auto& command = config_().ban.command;
                                  if (!command.empty())
                                    commands_.run("ban", command_argv(command, address));
                                  if (done) done(status, length);
                                });
                   });
}

void Bans::unban(const protocol::IpAddress& client, Store::StatusCallback done) {
  store_.remove(client_key("strike:", client));
  store_.remove(client_key("fmx:", client));
  store_.remove(client_key("ban:", client), [this, client, done](StoreStatus status) {
    const std::string address = client.to_string();
    if (status == StoreStatus::kOk) {
      Log::event(LogLevel::kInfo, "UNBAN", "UNBAN [" + address + "]", {{"client", address}});
      metrics().inc("mxscreen_unbans_total");
      const auto& command = config_().ban.unban_command;
      if (!command.empty()) commands_.run("unban", command_argv(command, address));
    }
    if (done) done(status);
  });
}

void Bans::list(ListCallback cb) {
  store_.scan("ban:", kMaxListed, [cb](StoreStatus status, std::vector<Store::Item> items) {
    std::vector<BanEntry> bans;
    const int64_t now = wall_clock_seconds();
    for (auto& item : items) {
      auto record = checks::BanRecord::parse(item.value);
      if (!record || record->until <= now) continue;
      bans.push_back({item.key.substr(4), *record});
    }
    std::sort(bans.begin(), bans.end(),
              [](const BanEntry& a, const BanEntry& b) { return a.record.until < b.record.until; });
    cb(status, std::move(bans));
  });
}

}  // namespace mxscreen::proxy
