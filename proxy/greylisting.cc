// proxy/greylisting.cc: see greylisting.h.
#include "proxy/greylisting.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "checks/greylist_identity.h"
#include "proxy/metrics.h"
#include "proxy/public_suffix.h"
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
  p.unretried_keep =
      std::max<Sec>(std::chrono::hours(1), 3 * std::chrono::duration_cast<Sec>(c.sweep_interval));
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

// Reads of a record that other sessions keep changing, before a decision stands unstored.
constexpr int kGreylistAttempts = 3;

// postgrey's auto-allowlist: count this client's pass, at most once an hour. The count is
// written with put_if, read again when another session (worker, host) counted in between.
void count_client_pass(Store& store, const std::string& key, int64_t now,
                       const checks::GreylistPolicy& policy, int attempt) {
  store.get(key, [&store, key, now, policy, attempt](StoreStatus st, const std::string& value) {
    if (st == StoreStatus::kUnavailable) return;
    std::optional<std::string> expected;
    if (st == StoreStatus::kOk) expected = value;
    auto updated = checks::count_client_pass(expected, now, policy);
    if (!updated) return;
    store.put_if(key, expected, *updated, policy.max_age,
                 [&store, key, now, policy, attempt](StoreStatus put) {
                   if (put == StoreStatus::kConflict && attempt < kGreylistAttempts)
                     count_client_pass(store, key, now, policy, attempt + 1);
                 });
  });
}

void decide_triplet(Store& store, const std::string& key, const std::string& fallback,
                    const protocol::IpAddress& client, bool fcrdns,
                    const checks::GreylistPolicy& policy, std::function<void(GreylistAnswer)> done,
                    int attempt);

// Decides on `basis` (the record read: the triplet's own, or its network-keyed record) and
// stores the new record under `key` only if `key` still holds `expected` (put_if).
void store_decision(Store& store, const std::string& key, const std::string& fallback,
                    std::optional<std::string> expected, std::optional<std::string> basis,
                    const protocol::IpAddress& client, bool fcrdns,
                    const checks::GreylistPolicy& policy, std::function<void(GreylistAnswer)> done,
                    int attempt) {
  int64_t now = wall_clock_seconds();
  auto result = checks::decide(basis, now, policy, fcrdns);
  store.put_if(key, expected, result.new_record, result.ttl,
               [&store, key, fallback, client, fcrdns, policy, done = std::move(done), attempt, now,
                basis, result](StoreStatus put) mutable {
                 if (put == StoreStatus::kConflict && attempt < kGreylistAttempts) {
                   return decide_triplet(store, key, fallback, client, fcrdns, policy,
                                         std::move(done), attempt + 1);
                 }
                 // A deferral the store could not record (LMDB map full, Redis gone since
                 // the read) would defer every retry as new, and the mail would never pass:
                 // fail open as for a store that cannot be read.
                 if (put == StoreStatus::kUnavailable && !result.passed()) {
                   return done(unavailable());
                 }
                 GreylistAnswer answer;
                 answer.outcome = std::string(checks::to_string(result.outcome));
                 if (!result.passed()) {
                   answer.verdict = GreylistAnswer::Verdict::kDefer;
                   answer.wait = result.wait;
                   return done(std::move(answer));
                 }
                 if (result.outcome == checks::GreylistOutcome::kPassed && basis) {
                   if (auto old = checks::GreylistRecord::parse(*basis)) {
                     answer.delayed = std::chrono::seconds(now - old->first_seen);
                     // What greylisting cost this mail: first try to pass, counted once (by
                     // the put_if winner), whichever side (session, policy) saw the retry.
                     if (!store.dry_run()) {
                       metrics().observe("mxscreen_greylist_delay_seconds", "",
                                         static_cast<double>(answer.delayed.count()),
                                         kGreylistDelayBuckets);
                     }
                   }
                 }
                 count_client_pass(store, checks::client_allowlist_key(client), now, policy, 1);
                 done(std::move(answer));
               });
}

// Reads the triplet's record, decides, and stores the new record only if the triplet still
// holds what was read (put_if): of the sessions and policy requests (workers, hosts) that see
// one triplet at once, one records it and the others decide again on what it wrote, so first
// sight is recorded once. A deferral that cannot be written fails open. An identity-keyed
// triplet (`fallback` = its network key) that has no record yet is decided on the network
// key's record when there is one: a first try whose PTR lookup failed, or one recorded before
// identity keys were on, still counts for the retry.
void decide_triplet(Store& store, const std::string& key, const std::string& fallback,
                    const protocol::IpAddress& client, bool fcrdns,
                    const checks::GreylistPolicy& policy, std::function<void(GreylistAnswer)> done,
                    int attempt) {
  store.get(key, [&store, key, fallback, client, fcrdns, policy, done = std::move(done), attempt](
                     StoreStatus status, const std::string& record) mutable {
    if (status == StoreStatus::kUnavailable) return done(unavailable());
    if (status == StoreStatus::kOk) {
      return store_decision(store, key, fallback, record, record, client, fcrdns, policy,
                            std::move(done), attempt);
    }
    if (fallback.empty()) {
      return store_decision(store, key, fallback, std::nullopt, std::nullopt, client, fcrdns,
                            policy, std::move(done), attempt);
    }
    store.get(fallback, [&store, key, fallback, client, fcrdns, policy, done = std::move(done),
                         attempt](StoreStatus net, const std::string& net_record) mutable {
      std::optional<std::string> basis;
      if (net == StoreStatus::kOk) basis = net_record;
      store_decision(store, key, fallback, std::nullopt, basis, client, fcrdns, policy,
                     std::move(done), attempt);
    });
  });
}

}  // namespace

void greylist_triplet(Store& store, const Runtime& runtime, const GreylistQuery& query,
                      std::function<void(GreylistAnswer)> done) {
  auto policy = greylist_policy(runtime.config->greylist);
  checks::IdentityFacts facts;
  if (query.spf_result == checks::SpfResult::kPass) facts.spf_pass_domain = query.spf_domain;
  facts.verified_name = query.verified_name;
  if (!query.verified_name.empty()) {
    facts.verified_org_domain = registrable_domain(query.verified_name);
  }
  auto identity =
      checks::choose_identity(facts, query.client, runtime.config->greylist.identity_keys);
  // Every answer says which key the triplet has (or would have), for the log and the metrics.
  auto keyed = [kind = std::string(checks::to_string(identity.kind)),
                text = " key=" + checks::describe(identity, query.client, policy),
                done = std::move(done)](GreylistAnswer answer, std::string gate = "") {
    if (answer.key != "none") {
      answer.key = kind;
      answer.key_text = text;
    }
    answer.gate = std::move(gate);
    done(std::move(answer));
  };
  // Allowlisted clients and recipients have no triplet: key "none", nothing on the log line.
  auto unkeyed = [&keyed](GreylistAnswer answer) {
    answer.key = "none";
    keyed(std::move(answer));
  };
  std::string why;
  if (runtime.greylist_clients->matches(query.client, query.verified_name, &why)) {
    return unkeyed(allowlisted(" by client_allowlist_file: " + why));
  }
  if (runtime.greylist_recipients->matches(query.recipient, &why)) {
    return unkeyed(allowlisted(" by recipient_allowlist_file: " + why, true));
  }
  std::string gate;
  if (runtime.greylist_only_if != 0) {
    checks::ClientFacts client_facts;
    if (query.facts) client_facts = *query.facts;
    client_facts.client = query.client;
    auto decision = checks::greylist_gate(client_facts, runtime.greylist_only_if);
    if (!decision.greylist) {
      GreylistAnswer answer;
      answer.outcome = "clean";
      return keyed(std::move(answer), " (only_if: clean: " + decision.facts + ")");
    }
    gate = " (only_if: " + decision.suspicious + ": " + decision.facts + ")";
  }
  std::string key =
      checks::greylist_key(identity, query.client, query.sender, query.recipient, policy);
  std::string fallback;
  if (identity.kind != checks::IdentityKind::kNet) {
    fallback = checks::greylist_key(query.client, query.sender, query.recipient, policy);
  }
  // First: is the client auto-allowlisted (it passed greylisting often enough before)?
  store.get(checks::client_allowlist_key(query.client),
            [&store, policy, key = std::move(key), fallback = std::move(fallback),
             client = query.client, fcrdns = !query.verified_name.empty(), gate = std::move(gate),
             keyed = std::move(keyed)](StoreStatus status, const std::string& value) mutable {
              auto finish = [gate, keyed = std::move(keyed)](GreylistAnswer answer) {
                keyed(std::move(answer), gate);
              };
              if (status == StoreStatus::kOk && checks::client_allowlisted(value, policy)) {
                auto answer = allowlisted("");
                answer.key = "none";  // the client, not a triplet
                return finish(std::move(answer));
              }
              decide_triplet(store, key, fallback, client, fcrdns, policy, std::move(finish), 1);
            });
}

}  // namespace mxscreen::proxy
