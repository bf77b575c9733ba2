// proxy/session_abuse.cc: abuse control around a session (issue 6): the ban check at connect
// (a banned client costs one store read and no DNS), fake-MX hits and real-MX visits recorded
// per client address for the nolisting verdicts, and strikes (drop verdicts, the hard error
// limit, AUTH on an MX port) that turn into an escalating ban. Everything lives in the state
// store, so with Redis several MX hosts share it.
#include "proxy/abuse.h"

#include "checks/ban.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
namespace {

std::string key(const char* prefix, const protocol::IpAddress& client) {
  return std::string(prefix) + client.to_string();
}

std::chrono::seconds secs(std::chrono::milliseconds ms) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(ms);
  return s.count() > 0 ? s : std::chrono::seconds(1);
}

}  // namespace

checks::BanPolicy ban_policy(const BanConfig& c) {
  return {secs(c.ban_time), secs(c.max_ban_time), c.max_retry, secs(c.find_time)};
}

void ban_client(Store& store, const protocol::IpAddress& client, const std::string& reason,
                const checks::BanPolicy& policy, std::chrono::seconds fixed) {
  std::string address = client.to_string();
  // How often this client was banned before decides the length (escalation).
  store.increment(key("banc:", client), 1, policy.max_ban_time * 4,
                  [&store, client, address, reason, policy, fixed](StoreStatus st, int64_t n) {
                    auto d = fixed.count() > 0 ? fixed
                                               : checks::ban_duration(
                                                     st == StoreStatus::kOk ? n - 1 : 0, policy);
                    checks::BanRecord record{wall_clock_seconds() + d.count(), reason};
                    store.put(key("ban:", client), record.to_string(), d);
                    Log::event(LogLevel::kWarning, "BANNED",
                               "BANNED [" + address + "] for " + std::to_string(d.count()) +
                                   "s: " + reason,
                               {{"client", address}, {"reason", reason}});
                    metrics().inc("mxscreen_bans_total", "reason=\"" + label_value(reason) + "\"");
                  });
}

void unban_client(Store& store, const protocol::IpAddress& client) {
  store.remove(key("ban:", client));
  store.remove(key("strike:", client));
  store.remove(key("fmx:", client));
  Log::event(LogLevel::kInfo, "UNBAN", "UNBAN [" + client.to_string() + "]",
             {{"client", client.to_string()}});
  metrics().inc("mxscreen_unbans_total");
}

void Session::check_ban() {
  if (permitted_) {
    after_ban_check();
    return;
  }
  auto alive = alive_;
  server_.store().get(key("ban:", client_.address), [this, alive](StoreStatus status,
                                                                  const std::string& value) {
    if (!*alive || state_ == State::kDone) return;
    if (status == StoreStatus::kOk && checks::is_banned(value, wall_clock_seconds())) {
      auto record = checks::BanRecord::parse(value);
      Log::event(LogLevel::kInfo, "BANNED",
                 "BANNED " + who() + ": connection refused (" + (record ? record->reason : "") +
                     ", " + std::to_string(record ? record->until - wall_clock_seconds() : 0) +
                     "s left)",
                 {{"client", client_labels()}});
      metrics().inc("mxscreen_banned_connections_total");
      if (config().ban.reply) {
        reply_and_close("554 5.7.1 Service unavailable; client [" + client_.address.to_string() +
                            "] is banned\r\n",
                        "banned");
      } else {
        client_conn_.close();  // not a byte read, not a byte written
        finish("banned");
      }
      return;
    }
    after_ban_check();
  });
}

void Session::record_fake_mx_hit() {
  const auto& c = config();
  Store& store = server_.store();
  // The pair signal: a real MTA that found this MX unusable comes to the real one next.
  store.put(key("fmxp:", client_.address), "1", secs(c.fake_mx.pair_window));
  if (!c.ban.on_fake_mx) return;
  auto client = client_.address;
  auto policy = ban_policy(c.ban);
  int ban_after = c.fake_mx.ban_after;
  store.increment(
      key("fmx:", client), 1, secs(c.fake_mx.window),
      [&store, client, policy, ban_after](StoreStatus st, int64_t hits) {
        if (st != StoreStatus::kOk || hits < ban_after) return;
        store.get(key("mx:", client), [&store, client, policy, hits, ban_after](
                                          StoreStatus seen, const std::string&) {
          if (checks::fake_mx_ban_due(hits, seen == StoreStatus::kOk, ban_after)) {
            ban_client(store, client,
                       "fake MX only (" + std::to_string(hits) + " hits, never the real MX)",
                       policy);
          }
        });
      });
}

void Session::record_mx_visit() {
  const auto& c = config();
  Store& store = server_.store();
  store.put(key("mx:", client_.address), "1", secs(c.fake_mx.window));
  auto alive = alive_;
  store.get(key("fmxp:", client_.address), [this, alive](StoreStatus st, const std::string&) {
    if (!*alive || st != StoreStatus::kOk) return;
    nolisting_pass_ = true;
    Log::event(LogLevel::kInfo, "FAKE-MX",
               "FAKE-MX pass " + who() + ": tried the fake MX first, then the real one",
               {{"client", client_labels()}});
    metrics().inc("mxscreen_nolisting_pass_total");
  });
}

void Session::strike(const std::string& why) {
  const auto& c = config();
  if (!c.ban.on_strikes || permitted_) return;
  Store& store = server_.store();
  auto client = client_.address;
  auto policy = ban_policy(c.ban);
  store.increment(key("strike:", client), 1, policy.find_time,
                  [&store, client, policy, why](StoreStatus st, int64_t strikes) {
                    if (st == StoreStatus::kOk && strikes >= policy.max_retry) {
                      store.remove(key("strike:", client));
                      ban_client(store, client,
                                 std::to_string(strikes) + " strikes, last: " + why, policy);
                    }
                  });
}

}  // namespace mxscreen::proxy
