// tests/proxy/greylisting_test.cc: greylist_triplet against the memory store: the identity key
// it chooses (key= on the log line, the key label), the only_if gate, and an identity-keyed
// triplet decided on its network-keyed record when it has none of its own.
#include "proxy/greylisting.h"

#include <gtest/gtest.h>

#include "checks/greylist_identity.h"
#include "proxy/runtime.h"
#include "proxy/store_memory.h"

namespace mxscreen::proxy {
namespace {

std::shared_ptr<const Runtime> runtime(std::string_view toml) {
  auto parsed = parse_config(toml, "t.toml");
  EXPECT_TRUE(parsed.ok());
  std::vector<std::string> errors;
  auto rt = build_runtime(*parsed.config, &errors);
  EXPECT_TRUE(rt) << (errors.empty() ? "" : errors[0]);
  return rt;
}

GreylistQuery query(const char* client, const char* verified_name) {
  GreylistQuery q;
  q.client = *protocol::IpAddress::parse(client);
  q.verified_name = verified_name;
  q.sender = "alice@example.org";
  q.recipient = "bob@example.test";
  return q;
}

GreylistAnswer ask(Store& store, const Runtime& rt, const GreylistQuery& q) {
  std::optional<GreylistAnswer> got;
  greylist_triplet(store, rt, q, [&got](GreylistAnswer a) { got = std::move(a); });
  EXPECT_TRUE(got);  // the memory store answers at once
  return got.value_or(GreylistAnswer{});
}

TEST(ProxyGreylisting, OrganisationKeyGroupsAddressesOfOnePool) {
  auto rt = runtime("");
  MemoryStore store;
  auto first = ask(store, *rt, query("192.0.2.7", "mail-a.out.example.net"));
  EXPECT_EQ(first.outcome, "new");
  EXPECT_EQ(first.key, "ptr");
  EXPECT_EQ(first.key_text, " key=ptr:example.net");
  // Another address of the pool, in another network: the same triplet (an early retry).
  auto retry = ask(store, *rt, query("198.51.100.9", "mail-b.out.example.net"));
  EXPECT_EQ(retry.outcome, "early retry");
  EXPECT_EQ(retry.key, "ptr");
  // Without a verified name: the network.
  auto net = ask(store, *rt, query("203.0.113.5", ""));
  EXPECT_EQ(net.outcome, "new");
  EXPECT_EQ(net.key_text, " key=net:203.0.113.0/24");
}

TEST(ProxyGreylisting, IdentityKeysOffKeepTheNetwork) {
  auto rt = runtime("[greylist]\nidentity_keys = false\n");
  MemoryStore store;
  auto first = ask(store, *rt, query("192.0.2.7", "mail-a.out.example.net"));
  EXPECT_EQ(first.key, "net");
  EXPECT_EQ(ask(store, *rt, query("198.51.100.9", "mail-b.out.example.net")).outcome, "new");
}

TEST(ProxyGreylisting, IdentityTripletWithoutRecordReadsTheNetworkRecord) {
  auto rt = runtime("");
  MemoryStore store;
  auto q = query("192.0.2.7", "mail-a.out.example.net");
  auto policy = greylist_policy(rt->config->greylist);
  // A first try an hour ago, recorded under the network key (its PTR lookup failed, or
  // identity keys were off then).
  int64_t hour_ago = wall_clock_seconds() - 3600;
  store.put(checks::greylist_key(q.client, q.sender, q.recipient, policy),
            checks::GreylistRecord{hour_ago, hour_ago, false}.to_string(), std::chrono::hours(1));
  auto answer = ask(store, *rt, q);
  EXPECT_EQ(answer.outcome, "passed");
  EXPECT_EQ(answer.key, "ptr");
  EXPECT_GE(answer.delayed.count(), 3600);
  // The pass is recorded under the identity key.
  checks::GreylistIdentity id{checks::IdentityKind::kPtr, "example.net"};
  std::optional<std::string> stored;
  store.get(checks::greylist_key(id, q.client, q.sender, q.recipient, policy),
            [&stored](StoreStatus st, const std::string& v) {
              if (st == StoreStatus::kOk) stored = v;
            });
  ASSERT_TRUE(stored);
  EXPECT_TRUE(checks::GreylistRecord::parse(*stored)->passed);
}

TEST(ProxyGreylisting, OnlyIfSparesCleanClients) {
  auto rt = runtime("[greylist]\nonly_if = [\"no_fcrdns\", \"dnsbl\"]\n");
  MemoryStore store;
  auto q = query("192.0.2.7", "mail-a.out.example.net");
  checks::ClientFacts facts;
  facts.fcrdns = true;
  facts.ptr_name = "mail-a.out.example.net";
  q.facts = facts;
  auto clean = ask(store, *rt, q);
  EXPECT_EQ(clean.outcome, "clean");
  EXPECT_TRUE(clean.passed());
  EXPECT_EQ(clean.gate,
            " (only_if: clean: ptr=mail-a.out.example.net fcrdns=yes dnsbl=0 helo=none "
            "spf=unchecked)");
  q.facts->dnsbl_rank = 2;
  auto listed = ask(store, *rt, q);
  EXPECT_EQ(listed.outcome, "new");
  EXPECT_EQ(listed.gate.substr(0, 18), " (only_if: dnsbl: ");
}

}  // namespace
}  // namespace mxscreen::proxy
