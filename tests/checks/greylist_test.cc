// tests/checks/greylist_test.cc: the greylist decision with plain values and a fake clock:
// first sight, early retry, pass after delay, retry window, max age, subnet grouping, sender
// normalisation and the once-per-hour client auto-allowlist.
#include "checks/greylist.h"

#include <gtest/gtest.h>

#include "checks/sha256.h"

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kT0 = 1'700'000'000;

protocol::IpAddress ip(std::string_view text) { return *protocol::IpAddress::parse(text); }

TEST(ChecksGreylist, FirstSightIsNewAndExpiresAfterTheRetryWindow) {
  GreylistPolicy policy;
  GreylistResult r = decide(std::nullopt, kT0, policy);
  EXPECT_EQ(r.outcome, GreylistOutcome::kNew);
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.ttl, 48h);
  EXPECT_EQ(r.wait, 5min);
  auto record = GreylistRecord::parse(r.new_record);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->first_seen, kT0);
  EXPECT_FALSE(record->passed);
}

TEST(ChecksGreylist, EarlyRetryKeepsTheFirstSighting) {
  GreylistPolicy policy;
  std::string stored = decide(std::nullopt, kT0, policy).new_record;
  GreylistResult r = decide(stored, kT0 + 60, policy);
  EXPECT_EQ(r.outcome, GreylistOutcome::kEarlyRetry);
  EXPECT_EQ(r.wait, 240s);
  EXPECT_EQ(r.ttl, 48h - 60s);  // the window still counts from the first sighting
  EXPECT_EQ(GreylistRecord::parse(r.new_record)->first_seen, kT0);
  // One second before the delay is still early.
  EXPECT_EQ(decide(r.new_record, kT0 + 299, policy).outcome, GreylistOutcome::kEarlyRetry);
}

TEST(ChecksGreylist, RetryAfterTheDelayPassesAndAllowlistsTheTriplet) {
  GreylistPolicy policy;
  std::string stored = decide(std::nullopt, kT0, policy).new_record;
  GreylistResult r = decide(stored, kT0 + 300, policy);
  EXPECT_EQ(r.outcome, GreylistOutcome::kPassed);
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.ttl, std::chrono::seconds(35 * 24h));
  GreylistResult again = decide(r.new_record, kT0 + 86400, policy);
  EXPECT_EQ(again.outcome, GreylistOutcome::kAllowlistedTriplet);
  EXPECT_EQ(GreylistRecord::parse(again.new_record)->last_seen, kT0 + 86400);
}

TEST(ChecksGreylist, RetryAfterTheRetryWindowStartsOver) {
  GreylistPolicy policy;
  std::string stored = decide(std::nullopt, kT0, policy).new_record;
  GreylistResult r = decide(stored, kT0 + 2 * 86400 + 1, policy);
  EXPECT_EQ(r.outcome, GreylistOutcome::kNew);
  EXPECT_EQ(GreylistRecord::parse(r.new_record)->first_seen, kT0 + 2 * 86400 + 1);
}

TEST(ChecksGreylist, PassedTripletLapsesAfterMaxAgeUnseen) {
  GreylistPolicy policy;
  std::string passed = GreylistRecord{kT0, kT0 + 300, true}.to_string();
  EXPECT_EQ(decide(passed, kT0 + 300 + 35 * 86400, policy).outcome,
            GreylistOutcome::kAllowlistedTriplet);
  EXPECT_EQ(decide(passed, kT0 + 301 + 35 * 86400, policy).outcome, GreylistOutcome::kNew);
}

TEST(ChecksGreylist, MalformedOrFutureRecordsCountAsNew) {
  GreylistPolicy policy;
  EXPECT_EQ(decide("garbage", kT0, policy).outcome, GreylistOutcome::kNew);
  EXPECT_EQ(decide("1:2", kT0, policy).outcome, GreylistOutcome::kNew);
  EXPECT_EQ(decide("1:2:7", kT0, policy).outcome, GreylistOutcome::kNew);
  EXPECT_EQ(decide(GreylistRecord{kT0 + 100, kT0 + 100, false}.to_string(), kT0, policy).outcome,
            GreylistOutcome::kNew);
}

TEST(ChecksGreylist, RecordRoundTrips) {
  GreylistRecord record{kT0, kT0 + 5, true, true, false};
  EXPECT_EQ(record.to_string(), "1700000000:1700000005:1:1:0");
  auto back = GreylistRecord::parse(record.to_string());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->last_seen, kT0 + 5);
  EXPECT_TRUE(back->passed);
  EXPECT_TRUE(back->fcrdns);
  EXPECT_FALSE(back->counted);
  EXPECT_FALSE(GreylistRecord::parse("1:2:1:1"));
  EXPECT_FALSE(GreylistRecord::parse("1:2:1:2:0"));
}

TEST(ChecksGreylist, RecordsOfEarlierVersionsStillRead) {
  auto old = GreylistRecord::parse("1700000000:1700000300:1");
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->passed);
  EXPECT_FALSE(old->fcrdns);
  EXPECT_FALSE(old->counted);
  EXPECT_EQ(decide("1700000000:1700000300:1", kT0 + 600, GreylistPolicy{}).outcome,
            GreylistOutcome::kAllowlistedTriplet);
}

TEST(ChecksGreylist, TheFcrdnsFactOfTheFirstTryStaysWithTheTriplet) {
  GreylistPolicy policy;
  std::string first = decide(std::nullopt, kT0, policy, true).new_record;
  EXPECT_TRUE(GreylistRecord::parse(first)->fcrdns);
  // A retry from a client without FCrDNS now (a sibling in the /24) keeps the first fact.
  std::string early = decide(first, kT0 + 10, policy, false).new_record;
  EXPECT_TRUE(GreylistRecord::parse(early)->fcrdns);
  std::string passed = decide(early, kT0 + 300, policy, false).new_record;
  EXPECT_TRUE(GreylistRecord::parse(passed)->fcrdns);
  EXPECT_TRUE(GreylistRecord::parse(passed)->passed);
}

TEST(ChecksGreylist, UnretriedTripletsAreKeptPastTheWindowForTheSweep) {
  GreylistPolicy policy;
  policy.unretried_keep = 1h;
  GreylistResult r = decide(std::nullopt, kT0, policy);
  EXPECT_EQ(r.ttl, 49h);
  EXPECT_EQ(decide(r.new_record, kT0 + 60, policy).ttl, 49h - 60s);
  // Kept, but never a pass: past the window the next try starts over.
  EXPECT_EQ(decide(r.new_record, kT0 + 48 * 3600 + 1, policy).outcome, GreylistOutcome::kNew);
  // A passed triplet is kept max_age, as before.
  EXPECT_EQ(decide(r.new_record, kT0 + 300, policy).ttl, std::chrono::seconds(35 * 24h));
}

TEST(ChecksGreylist, Ipv4ClientsOfOneSlash24ShareATriplet) {
  GreylistPolicy policy;
  std::string a = greylist_key(ip("192.0.2.10"), "a@example.org", "b@example.net", policy);
  EXPECT_EQ(a, "gl:192.0.2.0/24:a@example.org:b@example.net");
  EXPECT_EQ(a, greylist_key(ip("192.0.2.250"), "a@example.org", "b@example.net", policy));
  EXPECT_NE(a, greylist_key(ip("192.0.3.10"), "a@example.org", "b@example.net", policy));
  policy.ipv4_prefix = 32;
  EXPECT_EQ(greylist_key(ip("192.0.2.10"), "a@x", "b@y", policy), "gl:192.0.2.10/32:a@x:b@y");
}

TEST(ChecksGreylist, Ipv6ClientsOfOneSlash64ShareATriplet) {
  GreylistPolicy policy;
  std::string a = greylist_key(ip("2001:db8:1:2::1"), "a@x", "b@y", policy);
  EXPECT_EQ(a, "gl:2001:db8:1:2::/64:a@x:b@y");
  EXPECT_EQ(a, greylist_key(ip("2001:db8:1:2:ffff::9"), "a@x", "b@y", policy));
  EXPECT_NE(a, greylist_key(ip("2001:db8:1:3::1"), "a@x", "b@y", policy));
  // An IPv4-mapped client is grouped as IPv4.
  EXPECT_EQ(greylist_key(ip("::ffff:192.0.2.7"), "a@x", "b@y", policy), "gl:192.0.2.0/24:a@x:b@y");
}

// A client chooses its addresses: 2,000-byte quoted local parts made 11.9 KB per triplet.
TEST(ChecksGreylist, LongAddressesMakeBoundedKeys) {
  GreylistPolicy policy;
  policy.strip_sender_tags = false;
  auto client = ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
  const std::string long_local = "\"" + std::string(2000, 'x') + "\"";
  const std::string sender = long_local + "@example.org";
  const std::string recipient = "rcpt-" + long_local + "@example.net";
  std::string key = greylist_key(client, sender, recipient, policy);
  EXPECT_LE(key.size(), 3u + 39 + 4 + 2 + 2 * kGreylistKeyPartLimit);
  EXPECT_LT(key.size(), 511u);  // LMDB's key limit: never its own (FNV) fallback
  // Prefix, '~' and the SHA-256 of the whole escaped part, for both parts.
  EXPECT_EQ(key, "gl:2001:db8:ffff:ffff::/64:" + sender.substr(0, kGreylistKeyPrefix) + "~" +
                     sha256_hex(sender) + ":" + recipient.substr(0, kGreylistKeyPrefix) + "~" +
                     sha256_hex(recipient));
  // Deterministic, and one byte anywhere makes another key (even past the prefix).
  EXPECT_EQ(key, greylist_key(client, sender, recipient, policy));
  std::string other = recipient;
  other[1500] = 'y';
  EXPECT_NE(key, greylist_key(client, sender, other, policy));
  // Up to the limit an address is kept as it is (escaped).
  const std::string at_limit = std::string(kGreylistKeyPartLimit - 12, 'a') + "@example.org";
  EXPECT_EQ(greylist_key(ip("192.0.2.1"), "", at_limit, policy), "gl:192.0.2.0/24::" + at_limit);
  const std::string over = "a" + at_limit;
  EXPECT_EQ(greylist_key(ip("192.0.2.1"), "", over, policy),
            "gl:192.0.2.0/24::" + over.substr(0, kGreylistKeyPrefix) + "~" + sha256_hex(over));
}

TEST(ChecksGreylist, KeysAreCaseInsensitiveAndUnambiguous) {
  GreylistPolicy policy;
  auto client = ip("192.0.2.1");
  EXPECT_EQ(greylist_key(client, "Alice@Example.ORG", "Bob@Example.NET", policy),
            greylist_key(client, "alice@example.org", "bob@example.net", policy));
  EXPECT_NE(greylist_key(client, "a:b@x", "c@y", policy),
            greylist_key(client, "a@x", "b:c@y", policy));
  EXPECT_EQ(greylist_key(client, "", "b@y", policy), "gl:192.0.2.0/24::b@y");
  EXPECT_EQ(greylist_key(client, "a b%@x", "c@y", policy), "gl:192.0.2.0/24:a%20b%25@x:c@y");
}

TEST(ChecksGreylist, SenderNormalisation) {
  EXPECT_EQ(normalize_sender("", true), "");
  EXPECT_EQ(normalize_sender("MAILER-DAEMON", true), "mailer-daemon");
  EXPECT_EQ(normalize_sender("Alice+News@Example.org", true), "alice@example.org");
  EXPECT_EQ(normalize_sender("Alice+News@Example.org", false), "alice+news@example.org");
  // VERP: number-only words become '#', as postgrey does.
  EXPECT_EQ(normalize_sender("bounce-12345-678@list.example", true), "bounce-#-#@list.example");
  EXPECT_EQ(normalize_sender("user123@example.org", true), "user123@example.org");
  EXPECT_EQ(normalize_sender("bounces+1234-abc@example.org", true), "bounces@example.org");
  // BATV.
  EXPECT_EQ(normalize_sender("prvs=1234abcdef=alice@example.org", true), "alice@example.org");
  EXPECT_EQ(normalize_sender("msprvs1=17abcdEF=bounce@example.org", true), "bounce@example.org");
  // SRS: back to the original sender.
  EXPECT_EQ(normalize_sender("SRS0=HHH=TT=orig.example=alice@forwarder.example", true),
            "alice@orig.example");
  EXPECT_EQ(normalize_sender("SRS0+xyz=2a=orig.example=alice@fwd.example", true),
            "alice@orig.example");
  EXPECT_EQ(
      normalize_sender("SRS1=HHH=first.example==HHH=TT=orig.example=alice@second.example", true),
      "alice@orig.example");
  EXPECT_EQ(normalize_sender("SRS0=broken@fwd.example", true), "srs0=broken@fwd.example");
  // One real sender is one triplet whatever the tags.
  GreylistPolicy policy;
  auto client = ip("192.0.2.1");
  EXPECT_EQ(greylist_key(client, "prvs=0123abcdef=List+42@Example.org", "r@y", policy),
            greylist_key(client, "list@example.org", "r@y", policy));
}

TEST(ChecksGreylist, ClientPassesAreCountedOncePerHour) {
  EXPECT_TRUE(should_count_client_pass(std::nullopt, kT0));
  EXPECT_FALSE(should_count_client_pass(kT0, kT0 + 3599));
  EXPECT_TRUE(should_count_client_pass(kT0, kT0 + 3600));
  EXPECT_TRUE(should_count_client_pass(kT0 + 10, kT0));  // clock went back

  GreylistPolicy policy;
  auto first = count_client_pass(std::nullopt, kT0, policy);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, "1:1700000000");
  EXPECT_FALSE(count_client_pass(*first, kT0 + 1800, policy));
  auto second = count_client_pass(*first, kT0 + 3600, policy);
  ASSERT_TRUE(second);
  EXPECT_EQ(ClientPassRecord::parse(*second)->count, 2);
}

TEST(ChecksGreylist, ClientIsAllowlistedAfterEnoughCountedPasses) {
  GreylistPolicy policy;
  policy.auto_allowlist_clients = 3;
  EXPECT_EQ(client_allowlist_key(ip("192.0.2.9")), "gla:192.0.2.9");
  std::optional<std::string> record;
  int64_t now = kT0;
  // Ten passes within one hour count once.
  for (int i = 0; i < 10; ++i) {
    auto next = count_client_pass(record, now + i, policy);
    if (next) record = next;
  }
  EXPECT_EQ(ClientPassRecord::parse(*record)->count, 1);
  EXPECT_FALSE(client_allowlisted(record, policy));
  for (int hour = 1; hour <= 2; ++hour) {
    record = count_client_pass(record, now + hour * 3600, policy);
    ASSERT_TRUE(record);
  }
  EXPECT_TRUE(client_allowlisted(record, policy));
  EXPECT_FALSE(client_allowlisted(std::nullopt, policy));
  EXPECT_FALSE(client_allowlisted("junk", policy));
  policy.auto_allowlist_clients = 0;  // off
  EXPECT_FALSE(client_allowlisted(record, policy));
  EXPECT_FALSE(count_client_pass(record, now + 10 * 3600, policy));
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksGreylist, ReplyEscapesTheRecipient) {
  EXPECT_EQ(greylist_reply("user@example.org", "Greylisted, please try again later"),
            "450 4.2.0 <user@example.org>: Recipient address rejected: Greylisted, please try "
            "again later");
  EXPECT_EQ(greylist_reply("a\x01@b", "x"), "450 4.2.0 <a\\x01@b>: Recipient address rejected: x");
}

}  // namespace
}  // namespace mxscreen::checks
