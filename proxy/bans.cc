// proxy/bans.cc: see abuse.h.
#include <algorithm>
#include <charconv>
#include <memory>

#include "checks/store_keys.h"
#include "proxy/abuse.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {

namespace keys = checks::store_keys;

std::chrono::seconds ttl_seconds(std::chrono::milliseconds ms) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(ms);
  return s.count() > 0 ? s : std::chrono::seconds(1);
}

checks::BanPolicy ban_policy(const BanConfig& c) {
  return {ttl_seconds(c.ban_time), ttl_seconds(c.max_ban_time), c.max_retry,
          ttl_seconds(c.find_time)};
}

std::string Bans::identity(const protocol::IpAddress& client) const {
  return protocol::client_identity(client, config_().ban.ipv6_prefix);
}

std::string Bans::key(std::string_view prefix, const protocol::IpAddress& client) const {
  return keys::make(prefix, identity(client));
}

Bans::Bans(uv_loop_t* loop, Store& store, ConfigSource config)
    : store_(store), config_(std::move(config)), commands_(loop) {}

void Bans::ban(const protocol::IpAddress& client, std::string_view trigger,
               const std::string& reason, std::chrono::seconds fixed, BannedCallback done) {
  auto policy = ban_policy(config_().ban);
  const std::string who = identity(client);
  const std::string ban_key = keys::make(keys::kBan, who);
  const std::string count_key = keys::make(keys::kBanCount, who);
  const auto count_ttl = policy.max_ban_time * 4;
  auto stored = [this, who, trigger = std::string(trigger), reason, done, count_key, count_ttl](
                    StoreStatus status, std::chrono::seconds length) {
    if (status == StoreStatus::kOk) {
      store_.increment(count_key, 1, count_ttl);
      banned(who, trigger, reason, length);
    } else if (status == StoreStatus::kUnavailable) {
      Log::warning("cannot ban [" + who + "]: state store " + std::string(to_string(status)));
    }
    if (done) done(status, length);
  };
  if (fixed.count() > 0) {
    checks::BanRecord record{wall_clock_seconds() + fixed.count(), reason};
    store_.put(ban_key, record.to_string(), fixed,
               [stored, fixed](StoreStatus status) { stored(status, fixed); });
    return;
  }
  // How often this client was banned before decides the length (escalation). Every session
  // racing to ban it reads the same count; only the one whose put_if creates the record bans
  // (and counts the ban), the others find it banned already (kConflict).
  store_.get(count_key,
             [this, ban_key, reason, policy, stored](StoreStatus st, const std::string& value) {
               int64_t previous = 0;
               if (st == StoreStatus::kOk)
                 std::from_chars(value.data(), value.data() + value.size(), previous);
               auto length = checks::ban_duration(previous, policy);
               checks::BanRecord record{wall_clock_seconds() + length.count(), reason};
               store_.put_if(ban_key, std::nullopt, record.to_string(), length,
                             [stored, length](StoreStatus status) { stored(status, length); });
             });
}

void Bans::banned(const std::string& client, std::string_view trigger, const std::string& reason,
                  std::chrono::seconds length) {
  Log::event(LogLevel::kWarning, "BANNED",
             "BANNED [" + client + "] for " + std::to_string(length.count()) + "s: " + reason,
             {{"client", client}, {"reason", reason}});
  metrics().inc("mxscreen_bans_total", "trigger=\"" + label_value(trigger) + "\"");
  const auto& command = config_().ban.command;
  if (!command.empty()) commands_.run("ban", command_argv(command, client));
}

void Bans::unban(const protocol::IpAddress& client, Store::StatusCallback done) {
  const std::string who = identity(client);
  store_.remove(keys::make(keys::kStrike, who));
  store_.remove(keys::make(keys::kFakeMxHits, who));
  store_.remove(keys::make(keys::kBan, who), [this, who, done](StoreStatus status) {
    if (status == StoreStatus::kOk) {
      Log::event(LogLevel::kInfo, "UNBAN", "UNBAN [" + who + "]", {{"client", who}});
      metrics().inc("mxscreen_unbans_total");
      const auto& command = config_().ban.unban_command;
      if (!command.empty()) commands_.run("unban", command_argv(command, who));
    }
    if (done) done(status);
  });
}

void Bans::list(ListCallback cb) {
  store_.scan(std::string(keys::kBan), kMaxListed,
              [cb](StoreStatus status, std::vector<Store::Item> items) {
                std::vector<BanEntry> bans;
                const int64_t now = wall_clock_seconds();
                for (auto& item : items) {
                  auto record = checks::BanRecord::parse(item.value);
                  if (!record || record->until <= now) continue;
                  bans.push_back({std::string(keys::identity_of(keys::kBan, item.key)), *record});
                }
                std::sort(bans.begin(), bans.end(), [](const BanEntry& a, const BanEntry& b) {
                  return a.record.until < b.record.until;
                });
                cb(status, std::move(bans));
              });
}

}  // namespace mxscreen::proxy
