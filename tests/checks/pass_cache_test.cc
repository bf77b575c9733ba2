// tests/checks/pass_cache_test.cc: the per-test verdict cache record: its text form, old
// records, postscreen's TTLs and the connect-time decision (PASS OLD / re-check DNSBL / screen).
#include "checks/pass_cache.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using std::chrono::seconds;

constexpr int64_t kNow = 1'800'000'000;
constexpr CachedTestSet kAllTests = {true, true, true, true, true};

TEST(PassCache, RecordRoundTrips) {
  PassRecord r;
  r.expires = {kNow + 86400, kNow + 60, 0, kNow + 2592000, 0};
  std::string text = format_pass_record(r);
  EXPECT_EQ(text, "v2 pregreet=1800086400 dnsbl=1800000060 non_smtp=1802592000");
  auto back = parse_pass_record(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->expires, r.expires);
  EXPECT_EQ(back->latest(), kNow + 2592000);
  EXPECT_EQ(format_pass_record(PassRecord{}), "v2");
}

TEST(PassCache, OldAndBrokenRecordsAreNoPass) {
  EXPECT_FALSE(parse_pass_record("1"));  // the single-TTL record of earlier versions
  EXPECT_FALSE(parse_pass_record(""));
  EXPECT_FALSE(parse_pass_record("v2 dnsbl"));
  EXPECT_FALSE(parse_pass_record("v2 dnsbl=abc"));
  EXPECT_FALSE(parse_pass_record("v2 dnsbl=-5"));
  EXPECT_FALSE(parse_pass_record("v2 dnsbl=1800000060x"));
  EXPECT_FALSE(parse_pass_record("v2  dnsbl=1"));
  EXPECT_FALSE(parse_pass_record("v3 dnsbl=1800000060"));
  // A field a later version added is skipped; the others count.
  auto r = parse_pass_record("v2 spf=1800000999 dnsbl=1800000060");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->expires[1], 1800000060);
}

TEST(PassCache, DnsblTtlIsClampedAsPostscreen) {
  PassTtls ttls;  // 60 s .. 1 h
  EXPECT_EQ(dnsbl_verdict_ttl(seconds(10), ttls), seconds(60));
  EXPECT_EQ(dnsbl_verdict_ttl(seconds(300), ttls), seconds(300));
  EXPECT_EQ(dnsbl_verdict_ttl(seconds(86400), ttls), seconds(3600));
}

TEST(PassCache, NewPassUsesEachTestsTtl) {
  PassTtls ttls;
  auto r = new_pass_record({true, true, true, false, true}, kNow, ttls, seconds(300));
  EXPECT_EQ(r.expires[0], kNow + 86400);    // postscreen_greet_ttl 1d
  EXPECT_EQ(r.expires[1], kNow + 300);      // the DNSBL answers' TTL
  EXPECT_EQ(r.expires[2], kNow + 2592000);  // postscreen_pipelining_ttl 30d
  EXPECT_EQ(r.expires[3], 0);               // not passed: not remembered
  EXPECT_EQ(r.expires[4], kNow + 2592000);
  // A DNSWL client skipped the other tests: each pass lasts as long as the DNSWL verdict.
  auto wl = new_pass_record(kAllTests, kNow, ttls, seconds(300), true);
  for (auto at : wl.expires) EXPECT_EQ(at, kNow + 300);
}

TEST(PassCache, NothingExpiredIsPassOld) {
  auto r = new_pass_record(kAllTests, kNow, PassTtls{}, seconds(60));
  auto c = check_pass_record(r, kAllTests, kNow + 59);
  EXPECT_EQ(c.verdict, CacheVerdict::kPassOld);
  EXPECT_TRUE(c.expired.empty());
}

TEST(PassCache, OnlyDnsblExpiredIsARecheck) {
  auto r = new_pass_record(kAllTests, kNow, PassTtls{}, seconds(60));
  auto c = check_pass_record(r, kAllTests, kNow + 60);
  EXPECT_EQ(c.verdict, CacheVerdict::kRecheckDnsbl);
  ASSERT_EQ(c.expired.size(), 1u);
  EXPECT_EQ(c.expired[0], CachedTest::kDnsbl);
}

TEST(PassCache, AnotherTestExpiredMeansScreen) {
  auto r = new_pass_record(kAllTests, kNow, PassTtls{}, seconds(60));
  auto c = check_pass_record(r, kAllTests, kNow + 86400);
  EXPECT_EQ(c.verdict, CacheVerdict::kScreen);
  ASSERT_EQ(c.expired.size(), 2u);
  EXPECT_EQ(c.expired[0], CachedTest::kPregreet);
  EXPECT_EQ(c.expired[1], CachedTest::kDnsbl);
}

TEST(PassCache, ATestTurnedOnSinceHasNoPass) {
  // Written while bare_newline was off; now it is on.
  auto r = new_pass_record({true, true, true, true, false}, kNow, PassTtls{}, seconds(600));
  auto c = check_pass_record(r, kAllTests, kNow + 1);
  EXPECT_EQ(c.verdict, CacheVerdict::kScreen);
  ASSERT_EQ(c.expired.size(), 1u);
  EXPECT_EQ(to_string(c.expired[0]), "bare_newline");
  // A test turned off since does not matter, expired or not.
  CachedTestSet no_dnsbl = {true, false, true, true, false};
  EXPECT_EQ(check_pass_record(r, no_dnsbl, kNow + 601).verdict, CacheVerdict::kPassOld);
}

}  // namespace
}  // namespace mxscreen::checks
