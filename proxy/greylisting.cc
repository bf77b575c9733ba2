// proxy/greylisting.cc: see greylisting.h.
#include "proxy/greylisting.h"

#include <memory>
#include <utility>

#include "proxy/runtime.h"

namespace mxscreen::proxy {

checks::GreylistPolicy greylist_policy(const GreylistConfig& c) {
  using Sec = std::chrono::seconds;
  checks::GreylistPolicy p;
  p.delay = std::chrono::duration_cast<Sec>(c.delay);
  p.retry_window = std::chrono::duration_cast<Sec>(c.retry_window);
  p.max_age = std::chrono::duration_cast<Sec>(c.max_age);
  p.ipv4_prefix = c.ipv4_prefix;
  p.ipv6_prefix = c.ipv6_prefix;
  p.auto_allowlist_clients = c.auto_allowlist_clients;
  p.strip_sender_tags = c.strip_sender_tags;
  return p;
}

namespace {

GreylistAnswer allowlisted(std::string detail, bool recipient = false) {
  GreylistAnswer a;
  a.outcome = "allowlisted";
  a.detail = std::move(detail);
  a.recipient_allowlisted = recipient;
  return a;
}

GreylistAnswer unavailable() {
  GreylistAnswer a;
  a.verdict = GreylistAnswer::Verdict::kStoreUnavailable;
  a.outcome = "store_unavailable";
  return a;
}

// The triplet's record is in: decide, store the new record and, on a pass, count the client.
void decide_triplet(Store& store, const std::string& key, const protocol::IpAddress& client,
                    StoreStatus status, const std::string& record,
                    const checks::GreylistPolicy& policy,
                    const std::function<void(GreylistAnswer)>& done) {
  if (status == StoreStatus::kUnavailable) return done(unavailable());
  int64_t now = wall_clock_seconds();
  std::optional<std::string_view> stored;
  if (status == StoreStatus::kOk) stored = record;
  auto result = checks::decide(stored, now, policy);
  store.put(key, result.new_record, result.ttl);
  GreylistAnswer answer;
  answer.outcome = std::string(checks::to_string(result.outcome));
  if (!result.passed()) {
    answer.verdict = GreylistAnswer::Verdict::kDefer;
    answer.wait = result.wait;
    return done(std::move(answer));
  }
  if (result.outcome == checks::GreylistOutcome::kPassed && stored) {
    if (auto old = checks::GreylistRecord::parse(*stored)) {
      answer.delayed = std::chrono::seconds(now - old->first_seen);
    }
  }
  // postgrey's auto-allowlist: count this client's pass, at most once an hour.
  std::string client_key = checks::client_allowlist_key(client);
  store.get(client_key, [&store, client_key, now, policy](StoreStatus st, const std::string& v) {
    auto updated = checks::count_client_pass(
        st == StoreStatus::kOk ? std::optional<std::string_view>(v) : std::nullopt, now, policy);
    if (updated) store.put(client_key, *updated, policy.max_age);
  });
  done(std::move(answer));
}

}  // namespace

void greylist_triplet(Store& store, const Runtime& runtime, const GreylistQuery& query,
                      std::function<void(GreylistAnswer)> done) {
  std::string why;
  if (runtime.greylist_clients->matches(query.client, query.verified_name, &why)) {
    return done(allowlisted(" by client_allowlist_file: " + why));
  }
  if (runtime.greylist_recipients->matches(query.recipient, &why)) {
    return done(allowlisted(" by recipient_allowlist_file: " + why, true));
  }
  auto policy = greylist_policy(runtime.config->greylist);
  std::string key = checks::greylist_key(query.client, query.sender, query.recipient, policy);
  // First: is the client auto-allowlisted (it passed greylisting often enough before)?
  store.get(checks::client_allowlist_key(query.client),
            [&store, policy, key = std::move(key), client = query.client, done = std::move(done)](
                StoreStatus status, const std::string& value) mutable {
              if (status == StoreStatus::kOk && checks::client_allowlisted(value, policy)) {
                return done(allowlisted(""));
              }
              store.get(key, [&store, policy, key, client, done = std::move(done)](
                                 StoreStatus st, const std::string& record) {
                decide_triplet(store, key, client, st, record, policy, done);
              });
            });
}

}  // namespace mxscreen::proxy
