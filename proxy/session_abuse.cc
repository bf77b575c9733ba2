// proxy/session_abuse.cc: abuse control around a session (issue 6): the ban check at connect
// (a banned client costs one store read and no DNS), fake-MX hits and real-MX visits recorded
// per client address for the nolisting verdicts, and strikes (drop verdicts, the hard error
// limit, AUTH on an MX port) that turn into an escalating ban. Everything lives in the state
// store, so with Redis several MX hosts share it.
#include "checks/ban.h"
#include "proxy/abuse.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
void Session::check_ban() {
  if (permitted_) {
    after_ban_check();
    return;
  }
  auto alive = alive_;
  server_.store().get(client_key("ban:", client_.address), [this, alive](StoreStatus status,
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
  store.put(client_key("fmxp:", client_.address), "1", ttl_seconds(c.fake_mx.pair_window));
  if (!c.ban.on_fake_mx) return;
  auto client = client_.address;
  Bans* bans = &server_.bans();
  int ban_after = c.fake_mx.ban_after;
  // Only the hit that reaches ban_after bans, and the ban starts the count again: a burst of
  // hits that all passed the ban check before the ban was stored (Redis answers later) earns
  // one ban, not one escalating ban per hit.
  store.increment(client_key("fmx:", client), 1, ttl_seconds(c.fake_mx.window),
                  [&store, bans, client, ban_after](StoreStatus st, int64_t hits) {
                    if (st != StoreStatus::kOk || hits != ban_after) return;
                    store.get(client_key("mx:", client), [&store, bans, client, hits, ban_after](
                                                             StoreStatus seen, const std::string&) {
                      if (checks::fake_mx_ban_due(hits, seen == StoreStatus::kOk, ban_after)) {
                        store.remove(client_key("fmx:", client));
                        bans->ban(
                            client, "fake_mx",
                            "fake MX only (" + std::to_string(hits) + " hits, never the real MX)");
                      }
                    });
                  });
}

void Session::record_mx_visit() {
  const auto& c = config();
  Store& store = server_.store();
  store.put(client_key("mx:", client_.address), "1", ttl_seconds(c.fake_mx.window));
  auto alive = alive_;
  store.get(client_key("fmxp:", client_.address),
            [this, alive](StoreStatus st, const std::string&) {
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
  Bans* bans = &server_.bans();
  store.increment(client_key("strike:", client), 1, policy.find_time,
                  [&store, bans, client, policy, why](StoreStatus st, int64_t strikes) {
                    // As for fake-MX hits: the strike that reaches max_retry bans, once.
                    if (st == StoreStatus::kOk && strikes == policy.max_retry) {
                      store.remove(client_key("strike:", client));
                      bans->ban(client, "strikes",
                                std::to_string(strikes) + " strikes, last: " + why);
                    }
                  });
}

}  // namespace mxscreen::proxy
