// tests/checks/dnsbl_test.cc: postscreen_dnsbl_sites syntax, reply filters, weights, query
// names (IPv4 reversed octets, IPv6 reversed nibbles, RHSBL) and the zones' error answers.
#include "checks/dnsbl.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

DnsblSite site(const char* text) {
  std::string error;
  auto parsed = parse_dnsbl_site(text, &error);
  EXPECT_TRUE(parsed) << text << ": " << error;
  return parsed.value_or(DnsblSite{});
}

TEST(ChecksDnsbl, BareZone) {
  DnsblSite s = site("Zen.Spamhaus.org.");
  EXPECT_EQ(s.zone, "zen.spamhaus.org");
  EXPECT_FALSE(s.filter);
  EXPECT_EQ(s.weight, 1);
  EXPECT_EQ(s.text, "Zen.Spamhaus.org.");
}

TEST(ChecksDnsbl, ZoneWithWeight) {
  EXPECT_EQ(site("b.barracudacentral.org*2").weight, 2);
  EXPECT_EQ(site("list.dnswl.org*-5").weight, -5);
  EXPECT_EQ(site("x.test*+3").weight, 3);
}

TEST(ChecksDnsbl, ZoneWithFilterAndWeight) {
  DnsblSite s = site("zen.spamhaus.org=127.0.0.[2..11]*3");
  EXPECT_EQ(s.zone, "zen.spamhaus.org");
  ASSERT_TRUE(s.filter);
  EXPECT_EQ(s.weight, 3);
  EXPECT_FALSE(filter_matches(s, ip("127.0.0.1")));
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.2")));
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.11")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.0.12")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.1.2")));
}

TEST(ChecksDnsbl, FilterRangesInSeveralOctets) {
  DnsblSite s = site("list.dnswl.org=127.0.[0..255].[1..3]*-5");
  EXPECT_EQ(s.weight, -5);
  EXPECT_TRUE(filter_matches(s, ip("127.0.15.1")));
  EXPECT_TRUE(filter_matches(s, ip("127.0.255.3")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.15.0")));
  EXPECT_FALSE(filter_matches(s, ip("127.1.15.1")));
}

TEST(ChecksDnsbl, FilterLists) {
  DnsblSite s = site("bl.test=127.0.0.[2;4;6..8]");
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.2")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.0.3")));
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.4")));
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.7")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.0.9")));
}

TEST(ChecksDnsbl, PlainFilter) {
  DnsblSite s = site("bl.test=127.0.0.4");
  EXPECT_TRUE(filter_matches(s, ip("127.0.0.4")));
  EXPECT_FALSE(filter_matches(s, ip("127.0.0.2")));
  EXPECT_FALSE(filter_matches(s, ip("::1")));
}

TEST(ChecksDnsbl, BadSitesAreRefusedWithAReason) {
  for (const char* bad :
       {"", "=127.0.0.2", "zen..test", "zen.test*", "zen.test*x", "zen.test=127.0.0",
        "zen.test=127.0.0.0.1", "zen.test=127.0.0.[2..]", "zen.test=127.0.0.[5..2]",
        "zen.test=127.0.0.256", "zen.test=127.0.0.[2", "bad zone.test", "zen.test=[]"}) {
    std::string error;
    EXPECT_FALSE(parse_dnsbl_site(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  EXPECT_FALSE(parse_dnsbl_site("x..y", nullptr));  // no error out-parameter is fine
}

TEST(ChecksDnsbl, SiteListReportsEveryBadEntry) {
  std::vector<std::string> errors;
  EXPECT_FALSE(parse_dnsbl_sites({"ok.test", "bad..test", "x.test*y"}, &errors));
  EXPECT_EQ(errors.size(), 2u);
  auto sites =
      parse_dnsbl_sites({"zen.spamhaus.org=127.0.0.[2..11]*3", "list.dnswl.org*-5"}, &errors);
  ASSERT_TRUE(sites);
  EXPECT_EQ(sites->size(), 2u);
}

TEST(ChecksDnsbl, Ipv4QueryNameReversesOctets) {
  EXPECT_EQ(dnsbl_query_name(ip("192.0.2.99"), "zen.spamhaus.org"), "99.2.0.192.zen.spamhaus.org");
  EXPECT_EQ(dnsbl_query_name(ip("127.0.0.2"), "zen.test."), "2.0.0.127.zen.test");
}

TEST(ChecksDnsbl, Ipv6QueryNameReversesNibbles) {
  // RFC 5782 section 2.4's example.
  EXPECT_EQ(dnsbl_query_name(ip("2001:db8:1:2:3:4:567:89ab"), "ugly.example.com"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
  EXPECT_EQ(dnsbl_query_name(ip("::1"), "ip6.arpa"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

TEST(ChecksDnsbl, RhsblQueryName) {
  EXPECT_EQ(rhsbl_query_name("Bad.Example.", "dbl.spamhaus.org"), "bad.example.dbl.spamhaus.org");
  EXPECT_EQ(rhsbl_query_name("", "dbl.test"), "");
  EXPECT_EQ(rhsbl_query_name(std::string(250, 'a'), "dbl.test"), "");
}

TEST(ChecksDnsbl, ErrorAnswersAreNeverListings) {
  for (const char* code : {"127.255.255.252", "127.255.255.254", "127.255.255.255", "127.255.255.0",
                           "127.0.0.1", "127.0.0.255", "10.0.0.2", "::1"}) {
    EXPECT_TRUE(is_dnsbl_error_answer(ip(code))) << code;
  }
  for (const char* code : {"127.0.0.2", "127.0.0.11", "127.0.15.3", "127.1.0.1"}) {
    EXPECT_FALSE(is_dnsbl_error_answer(ip(code))) << code;
  }
  // Even a filter that would match the error code does not make it a listing.
  DnsblSite any = site("zen.test=127.[0..255].[0..255].[0..255]*3");
  DnsblScore score;
  std::vector<protocol::IpAddress> answers = {ip("127.255.255.254")};
  EXPECT_EQ(score.add(any, answers), DnsblOutcome::kZoneError);
  EXPECT_EQ(score.rank(), 0);
  EXPECT_EQ(score.zone_errors(), 1);
  EXPECT_TRUE(score.hits().empty());
}

TEST(ChecksDnsbl, ScoreAddsWeightsOncePerSite) {
  DnsblSite zen = site("zen.test=127.0.0.[2..11]*3");
  DnsblSite bc = site("bc.test*2");
  DnsblSite wl = site("wl.test=127.0.[0..255].[1..3]*-5");
  DnsblScore score;
  std::vector<protocol::IpAddress> two = {ip("127.0.0.2"), ip("127.0.0.4")};
  EXPECT_EQ(score.add(zen, two), DnsblOutcome::kListed);
  EXPECT_EQ(score.rank(), 3);  // two matching answers, one site: counted once
  EXPECT_EQ(score.add(bc, {}), DnsblOutcome::kNotListed);
  std::vector<protocol::IpAddress> unrelated = {ip("127.0.0.20")};
  EXPECT_EQ(score.add(zen, unrelated), DnsblOutcome::kNotListed);
  std::vector<protocol::IpAddress> listed = {ip("127.0.0.2")};
  EXPECT_EQ(score.add(bc, listed), DnsblOutcome::kListed);
  EXPECT_EQ(score.rank(), 5);
  std::vector<protocol::IpAddress> dnswl = {ip("127.0.10.2")};
  EXPECT_EQ(score.add(wl, dnswl), DnsblOutcome::kListed);
  EXPECT_EQ(score.rank(), 0);
  ASSERT_EQ(score.hits().size(), 3u);
  EXPECT_EQ(score.hits()[0].zone, "zen.test");
  EXPECT_EQ(score.hits()[0].answers.size(), 2u);
  EXPECT_EQ(score.hits()[2].weight, -5);
}

TEST(ChecksDnsbl, ReplyNameComesFromTheMapElseNoName) {
  DnsblReplyMap map{{"key123.zen.dq.spamhaus.net", "zen.spamhaus.org"}};
  EXPECT_EQ(dnsbl_reply_name("key123.zen.dq.spamhaus.net", map), "zen.spamhaus.org");
  EXPECT_EQ(dnsbl_reply_name("KEY123.zen.dq.spamhaus.net.", map), "zen.spamhaus.org");
  // Unmapped: the zone is not shown, whatever it is.
  EXPECT_EQ(dnsbl_reply_name("other.dq.spamhaus.net", map), kUnnamedDnsbl);
  EXPECT_EQ(dnsbl_reply_name("zen.spamhaus.org", {}), "a DNS blocklist");
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksDnsbl, GreetDecisionThresholds) {
  EXPECT_EQ(dnsbl_decision(-5, 3, -1, Action::kEnforce), DnsblDecision::kAllowlisted);
  EXPECT_EQ(dnsbl_decision(0, 3, -1, Action::kEnforce), DnsblDecision::kPass);
  EXPECT_EQ(dnsbl_decision(2, 3, -1, Action::kDrop), DnsblDecision::kPass);
  EXPECT_EQ(dnsbl_decision(3, 3, -1, Action::kDrop), DnsblDecision::kListed);
  EXPECT_EQ(dnsbl_decision(3, 3, -1, Action::kOff), DnsblDecision::kPass);
}

TEST(ChecksDnsbl, RejectTextNamesTheHeaviestListOnlyByItsReplyName) {
  auto client = *protocol::IpAddress::parse("192.0.2.7");
  std::vector<DnsblHit> hits = {{"bl.test", "bl.test*1", 1, {}},
                                {"key123.zen.dq.test", "key123.zen.dq.test*3", 3, {}}};
  EXPECT_EQ(dnsbl_reject_text(client, hits, "", {}),
            "Service unavailable; client [192.0.2.7] blocked using a DNS blocklist");
  DnsblReplyMap map = {{"key123.zen.dq.test", "Spamhaus ZEN"}};
  EXPECT_EQ(dnsbl_reject_text(client, hits, "see https://check.test/", map),
            "Service unavailable; client [192.0.2.7] blocked using Spamhaus ZEN; see "
            "https://check.test/");
  // A TXT that names a zone (a DQS key inside) is left out.
  EXPECT_EQ(dnsbl_reject_text(client, hits, "Listed by KEY123.zen.dq.test", map),
            "Service unavailable; client [192.0.2.7] blocked using Spamhaus ZEN");
}

// drop closes with 521 now, enforce keeps the 550 for every RCPT, ignore says nothing.
TEST(DnsblRepliesTest, TheActionChoosesTheReply) {
  auto drop = dnsbl_replies(Action::kDrop, "Service unavailable; client [192.0.2.7] blocked");
  EXPECT_EQ(drop.drop, "521 5.7.1 Service unavailable; client [192.0.2.7] blocked");
  EXPECT_EQ(drop.enforce, "");
  auto enforce = dnsbl_replies(Action::kEnforce, "text");
  EXPECT_EQ(enforce.drop, "");
  EXPECT_EQ(enforce.enforce, "550 5.7.1 text");
  auto ignore = dnsbl_replies(Action::kIgnore, "text");
  EXPECT_EQ(ignore.drop + ignore.enforce, "");
}

}  // namespace
}  // namespace mxscreen::checks
