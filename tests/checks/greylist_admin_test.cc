// tests/checks/greylist_admin_test.cc: greylist state as the admin and the never-retried sweep
// read it: triplets read back from keys (IPv4, IPv6, null sender, hashed long addresses), the
// listing filters, triplet states, the sweep's claim, `ctl greylist pass` and the report.
#include "checks/greylist_admin.h"

#include <gtest/gtest.h>

#include "checks/greylist_identity.h"

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kT0 = 1'700'000'000;

protocol::IpAddress ip(std::string_view text) { return *protocol::IpAddress::parse(text); }

TEST(ChecksGreylistAdmin, TripletsReadBackFromTheirKeys) {
  GreylistPolicy policy;
  auto t = parse_greylist_key(greylist_key(ip("192.0.2.7"), "A@Example.org", "b@x.test", policy));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->network, "192.0.2.0/24");
  EXPECT_EQ(t->sender, "a@example.org");
  EXPECT_EQ(t->recipient, "b@x.test");

  auto v6 = parse_greylist_key(greylist_key(ip("2001:db8:1:2::9"), "", "b@x.test", policy));
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->network, "2001:db8:1:2::/64");
  EXPECT_EQ(v6->sender, "");  // the null sender

  // Identity-keyed triplets (greylist_identity.h) read back with their identity.
  auto ptr = parse_greylist_key(greylist_key(GreylistIdentity{IdentityKind::kPtr, "example.net"},
                                             ip("192.0.2.7"), "a@b.test", "c@d.test", policy));
  ASSERT_TRUE(ptr);
  EXPECT_EQ(ptr->network, "ptr=example.net");
  EXPECT_EQ(ptr->sender, "a@b.test");
  EXPECT_EQ(ptr->recipient, "c@d.test");

  EXPECT_FALSE(parse_greylist_key("pass:192.0.2.7"));
  EXPECT_FALSE(parse_greylist_key("gl:nonsense"));
  EXPECT_FALSE(parse_greylist_key("gl:192.0.2.0/24:a@b:"));
}

TEST(ChecksGreylistAdmin, FiltersMatchAddressesAsGreylistingNormalisesThem) {
  GreylistPolicy policy;
  auto t = *parse_greylist_key(
      greylist_key(ip("192.0.2.7"), "bounce+123@lists.example.org", "u@x.test", policy));
  auto match = [&](std::optional<std::string> s, std::optional<std::string> r) {
    return greylist_filter_matches(make_greylist_filter(s, r, policy), t);
  };
  EXPECT_TRUE(match(std::nullopt, std::nullopt));
  EXPECT_TRUE(match("Bounce+999@LISTS.example.org", std::nullopt));  // tag stripped, case
  EXPECT_TRUE(match("@lists.example.org", "@X.test"));
  EXPECT_TRUE(match(std::nullopt, "U@x.test"));
  EXPECT_FALSE(match("other@lists.example.org", std::nullopt));
  EXPECT_FALSE(match("@example.org", std::nullopt));  // a domain, not a suffix of one
  EXPECT_FALSE(match("<>", std::nullopt));

  auto null_sender = *parse_greylist_key(greylist_key(ip("192.0.2.7"), "", "u@x.test", policy));
  EXPECT_TRUE(
      greylist_filter_matches(make_greylist_filter("<>", std::nullopt, policy), null_sender));
}

TEST(ChecksGreylistAdmin, ALongSenderIsFoundByItsFullAddressNotItsDomain) {
  GreylistPolicy policy;
  std::string sender = std::string(300, 'x') + "@long.example";
  auto t = *parse_greylist_key(greylist_key(ip("192.0.2.7"), sender, "u@x.test", policy));
  EXPECT_NE(t.sender.find('~'), std::string::npos);  // listed as a prefix and a hash
  EXPECT_TRUE(greylist_filter_matches(make_greylist_filter(sender, std::nullopt, policy), t));
  EXPECT_FALSE(
      greylist_filter_matches(make_greylist_filter("@long.example", std::nullopt, policy), t));
}

TEST(ChecksGreylistAdmin, StatesOfATriplet) {
  GreylistPolicy policy;
  GreylistRecord pending{kT0, kT0, false, false, false};
  EXPECT_EQ(triplet_state(pending, kT0 + 60, policy), TripletState::kPending);
  EXPECT_EQ(triplet_state(pending, kT0 + 48 * 3600, policy), TripletState::kPending);
  EXPECT_EQ(triplet_state(pending, kT0 + 48 * 3600 + 1, policy), TripletState::kNeverRetried);
  GreylistRecord passed{kT0, kT0 + 300, true, false, false};
  EXPECT_EQ(triplet_state(passed, kT0 + 48 * 3600 + 1, policy), TripletState::kPassed);
  EXPECT_EQ(to_string(TripletState::kNeverRetried), "never-retried");
}

TEST(ChecksGreylistAdmin, TheSweepClaimsANeverRetriedTripletOnce) {
  GreylistPolicy policy;
  policy.unretried_keep = 1h;
  std::string stored = GreylistRecord{kT0, kT0 + 30, false, true, false}.to_string();
  EXPECT_FALSE(claim_never_retried(stored, kT0 + 48 * 3600, policy));  // still in the window
  auto claim = claim_never_retried(stored, kT0 + 48 * 3600 + 10, policy);
  ASSERT_TRUE(claim);
  EXPECT_TRUE(claim->record.fcrdns);
  EXPECT_TRUE(claim->record.counted);
  EXPECT_EQ(claim->ttl, 1h - 10s);  // what the record had left
  EXPECT_FALSE(claim_never_retried(claim->new_record, kT0 + 48 * 3600 + 20, policy));
  // Passed and unreadable records are never claimed.
  EXPECT_FALSE(claim_never_retried(GreylistRecord{kT0, kT0 + 300, true}.to_string(),
                                   kT0 + 49 * 3600, policy));
  EXPECT_FALSE(claim_never_retried("junk", kT0 + 49 * 3600, policy));
  // A counted record is still a first sight for the next try.
  EXPECT_EQ(decide(claim->new_record, kT0 + 48 * 3600 + 30, policy).outcome, GreylistOutcome::kNew);
}

TEST(ChecksGreylistAdmin, AdminPassKeepsTheFirstSightAndTheFcrdnsFact) {
  auto fresh = *GreylistRecord::parse(admin_pass_record(std::nullopt, kT0));
  EXPECT_TRUE(fresh.passed);
  EXPECT_EQ(fresh.first_seen, kT0);
  auto kept = *GreylistRecord::parse(
      admin_pass_record(GreylistRecord{kT0 - 60, kT0 - 30, false, true}.to_string(), kT0));
  EXPECT_TRUE(kept.passed);
  EXPECT_TRUE(kept.fcrdns);
  EXPECT_EQ(kept.first_seen, kT0 - 60);
  EXPECT_EQ(kept.last_seen, kT0);
  EXPECT_EQ(decide(admin_pass_record(std::nullopt, kT0), kT0 + 1, GreylistPolicy{}).outcome,
            GreylistOutcome::kAllowlistedTriplet);
}

TEST(ChecksGreylistAdmin, ReportRanksSendersByNeverRetriedTriplets) {
  EXPECT_EQ(never_retried_report_key(true, "a@b.test"), "glnr:y:a@b.test");
  std::vector<std::pair<std::string, std::string>> counters = {{"glnr:n:bot@spam.test", "40"},
                                                               {"glnr:y:news@list.test", "3"},
                                                               {"glnr:n:news@list.test", "2"},
                                                               {"glnr:y:", "7"},  // the null sender
                                                               {"glnr:x:odd", "9"},
                                                               {"glnr:n:junk@x", "many"},
                                                               {"gl:other", "1"}};
  auto rows = rank_never_retried(counters, 10);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].sender, "bot@spam.test");
  EXPECT_EQ(rows[0].total, 40);
  EXPECT_EQ(rows[0].fcrdns, 0);
  EXPECT_EQ(rows[1].sender, "");
  EXPECT_EQ(rows[1].fcrdns, 7);
  EXPECT_EQ(rows[2].sender, "news@list.test");
  EXPECT_EQ(rows[2].total, 5);
  EXPECT_EQ(rows[2].fcrdns, 3);
  EXPECT_EQ(rank_never_retried(counters, 1).size(), 1u);
}

}  // namespace
}  // namespace mxscreen::checks
