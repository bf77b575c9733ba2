// proxy/session_abuse.cc: abuse control around a session (issue 6): the ban check at connect
// (a banned client costs one store read and no DNS), fake-MX hits and real-MX visits recorded
// per client address for the nolisting verdicts, and strikes (drop verdicts, the hard error
// limit, AUTH on an MX port: a finding's `strike`, Session::apply) that turn into an escalating
// ban. Everything lives in the state store, so with Redis several MX hosts share it; a client is
// its address or its IPv6 ban.ipv6_prefix network (Bans::key). Counters are atomic increments
// and the ban is a put_if, so a burst over several workers or hosts earns one ban.
#include "checks/ban.h"
#include "checks/store_keys.h"
#include "proxy/abuse.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {

namespace keys = checks::store_keys;

void Session::check_ban() {
  if (permitted_) {
    after_ban_check();
    return;
  }
  auto alive = alive_;
  server_.store().get(
      server_.bans().key(keys::kBan, client_.address),
      [this, alive](StoreStatus status, const std::string& value) {
        if (!*alive || state_ == State::kDone) return;
        int64_t now = wall_clock_seconds();
        if (status == StoreStatus::kOk && checks::is_banned(value, now)) {
          apply(checks::banned_finding(client_.address, who(), checks::BanRecord::parse(value), now,
                                       config().ban.reply));
          return;
        }
        after_ban_check();
      });
}

void Session::record_fake_mx_hit(std::function<void()> then) {
  const auto& c = config();
  Store& store = server_.store();
  Bans* bans = &server_.bans();
  auto client = client_.address;
  int ban_after = c.fake_mx.ban_after;
  if (c.ban.on_fake_mx && ban_after > 0) {
    // Every hit from the threshold on may ban; the ban's put_if lets exactly one of them,
    // however many hits of a burst passed the ban check before the ban was stored.
    store.increment(
        bans->key(keys::kFakeMxHits, client), 1, ttl_seconds(c.fake_mx.window),
        [&store, bans, client, ban_after](StoreStatus st, int64_t hits) {
          if (st != StoreStatus::kOk || hits < ban_after) return;
          store.get(bans->key(keys::kRealMxSeen, client), [&store, bans, client, hits, ban_after](
                                                              StoreStatus seen,
                                                              const std::string&) {
            if (!checks::fake_mx_ban_due(hits, seen == StoreStatus::kOk, ban_after)) return;
            bans->ban(client, "fake_mx",
                      "fake MX only (" + std::to_string(hits) + " hits, never the real MX)",
                      std::chrono::seconds(0), [&store, bans, client](StoreStatus banned, auto) {
                        // The count starts again: the next ban needs ban_after new hits.
                        if (banned == StoreStatus::kOk)
                          store.remove(bans->key(keys::kFakeMxHits, client));
                      });
          });
        });
  }
  // The pair signal, last: `then` may end the session. The client learns nothing (reset,
  // 421) before the store has the signal: a real MTA goes on to the real MX at once, and that
  // may be another mxscreen on the same Redis.
  store.put(bans->key(keys::kFakeMxFirst, client), "1", ttl_seconds(c.fake_mx.pair_window),
            [then = std::move(then)](StoreStatus) { then(); });
}

void Session::record_mx_visit() {
  const auto& c = config();
  Store& store = server_.store();
  Bans& bans = server_.bans();
  store.put(bans.key(keys::kRealMxSeen, client_.address), "1", ttl_seconds(c.fake_mx.window));
  auto alive = alive_;
  store.get(bans.key(keys::kFakeMxFirst, client_.address),
            [this, alive](StoreStatus st, const std::string&) {
              if (!*alive || st != StoreStatus::kOk) return;
              nolisting_pass_ = true;
              apply(checks::nolisting_pass_finding(who()));
            });
}

void Session::strike(const std::string& why) {
  const auto& c = config();
  if (!c.ban.on_strikes || permitted_) return;
  Store& store = server_.store();
  auto client = client_.address;
  auto policy = ban_policy(c.ban);
  Bans* bans = &server_.bans();
  store.increment(bans->key(keys::kStrike, client), 1, policy.find_time,
                  [&store, bans, client, policy, why](StoreStatus st, int64_t strikes) {
                    // As for fake-MX hits: any strike from max_retry on may ban; put_if bans once.
                    if (st != StoreStatus::kOk || strikes < policy.max_retry) return;
                    bans->ban(client, "strikes", std::to_string(strikes) + " strikes, last: " + why,
                              std::chrono::seconds(0),
                              [&store, bans, client](StoreStatus banned, auto) {
                                if (banned == StoreStatus::kOk)
                                  store.remove(bans->key(keys::kStrike, client));
                              });
                  });
}

}  // namespace mxscreen::proxy
