// tests/checks/spf_test.cc: hand-made cases for checks::SpfCheck beyond the RFC 7208 suite:
// the round-by-round contract, a Google-shaped include chain, the explanation's exp-only
// macros, DNS failures and the limits. The record language alone is spf_record_test.cc, what
// mxscreen does with a finding spf_policy_test.cc.

#include "checks/spf.h"

#include <gtest/gtest.h>

#include "tests/checks/spf_fake_dns.h"

namespace mxscreen::checks {
namespace {

using testing::FakeDns;

SpfRequest request(const char* ip, const char* mail_from, const char* helo = "mail.example.org") {
  return SpfRequest{*protocol::IpAddress::parse(ip), helo, mail_from, "mx.example.net", 1700000000};
}

// example.org includes a Google-shaped chain: _spf.google.com -> three netblock records.
FakeDns google_like() {
  FakeDns dns;
  dns.add("example.org", DnsRecordType::kTXT, "v=spf1 include:_spf.google.com ~all");
  dns.add("example.org", DnsRecordType::kTXT, "google-site-verification=abc");
  dns.add("_spf.google.com", DnsRecordType::kTXT,
          "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com "
          "include:_netblocks3.google.com ~all");
  dns.add("_netblocks.google.com", DnsRecordType::kTXT,
          "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 ~all");
  dns.add("_netblocks2.google.com", DnsRecordType::kTXT,
          "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ~all");
  dns.add("_netblocks3.google.com", DnsRecordType::kTXT,
          "v=spf1 ip4:172.217.0.0/19 ip4:209.85.128.0/17 ~all");
  return dns;
}

TEST(ChecksSpf, IncludeChainPassesRoundByRound) {
  FakeDns dns = google_like();
  SpfCheck check(request("209.85.128.5", "alice@example.org"));
  auto first = check.next();
  ASSERT_FALSE(first.done());
  ASSERT_EQ(first.questions.size(), 1u);
  EXPECT_EQ(first.questions[0].type, DnsRecordType::kTXT);
  EXPECT_EQ(first.questions[0].name, "example.org");
  int rounds = 0;
  SpfFinding f = dns.run(check, &rounds);
  EXPECT_EQ(f.result, SpfResult::kPass);
  EXPECT_EQ(f.domain, "example.org");
  EXPECT_EQ(f.identity, "mailfrom");
  EXPECT_EQ(f.mechanism, "include:_spf.google.com");
  EXPECT_EQ(f.lookups, 4);  // three includes deep
  EXPECT_EQ(rounds, 6);     // example.org, _spf, _netblocks, 2, 3, then the finding
  // Done is done: the same finding again, no questions.
  auto again = check.next();
  EXPECT_TRUE(again.done());
  EXPECT_TRUE(again.questions.empty());
  EXPECT_EQ(again.finding->result, SpfResult::kPass);
}

TEST(ChecksSpf, Ip6ClientAndSoftfail) {
  FakeDns dns = google_like();
  SpfCheck ip6(request("2404:6800:4003::1", "bob@example.org"));
  EXPECT_EQ(dns.run(ip6).result, SpfResult::kPass);
  SpfCheck other(request("192.0.2.7", "bob@example.org"));
  SpfFinding f = dns.run(other);
  EXPECT_EQ(f.result, SpfResult::kSoftFail);
  EXPECT_EQ(f.mechanism, "~all");
}

TEST(ChecksSpf, NullSenderChecksHelo) {
  FakeDns dns;
  dns.add("mta.example.org", DnsRecordType::kTXT, "v=spf1 a -all");
  dns.add("mta.example.org", DnsRecordType::kA, "192.0.2.25");
  SpfCheck check(request("192.0.2.25", "", "mta.example.org"));
  SpfFinding f = dns.run(check);
  EXPECT_EQ(f.result, SpfResult::kPass);
  EXPECT_EQ(f.identity, "helo");
  EXPECT_EQ(f.domain, "mta.example.org");
}

TEST(ChecksSpf, ExplanationUsesExpOnlyMacros) {
  FakeDns dns;
  dns.add("example.org", DnsRecordType::kTXT, "v=spf1 -all exp=why.example.org");
  dns.add("why.example.org", DnsRecordType::kTXT,
          "%{c} may not send for %{o} to %{r} (at %{t}); ask %{L}");
  SpfCheck check(request("2001:db8::7", "Jo Doe@example.org"));
  SpfFinding f = dns.run(check);
  EXPECT_EQ(f.result, SpfResult::kFail);
  EXPECT_EQ(f.explanation,
            "2001:db8::7 may not send for example.org to mx.example.net (at 1700000000); ask "
            "Jo%20Doe");
}

TEST(ChecksSpf, DnsErrorsAreTemperrorNotFail) {
  FakeDns dns;
  dns.add("example.org", DnsRecordType::kTXT, "v=spf1 mx a:slow.example.org -all");
  dns.add_mx("example.org", 10, "mx1.example.org");
  dns.add("mx1.example.org", DnsRecordType::kA, "192.0.2.1");
  dns.add_timeout("slow.example.org");
  SpfCheck check(request("192.0.2.9", "a@example.org"));
  SpfFinding f = dns.run(check);
  EXPECT_EQ(f.result, SpfResult::kTempError);
  EXPECT_NE(f.problem.find("slow.example.org"), std::string::npos);
  SpfCheck from_mx(request("192.0.2.1", "a@example.org"));
  EXPECT_EQ(dns.run(from_mx).result, SpfResult::kPass);
}

TEST(ChecksSpf, MxHostsAreAskedInOneRound) {
  FakeDns dns;
  dns.add("example.org", DnsRecordType::kTXT, "v=spf1 mx -all");
  for (int i = 1; i <= 5; ++i) {
    std::string host = "mx" + std::to_string(i) + ".example.org";
    dns.add_mx("example.org", i, host);
    dns.add(host, DnsRecordType::kA, "192.0.2." + std::to_string(i));
  }
  SpfCheck check(request("192.0.2.5", "a@example.org"));
  int rounds = 0;
  EXPECT_EQ(dns.run(check, &rounds).result, SpfResult::kPass);
  EXPECT_EQ(rounds, 4);  // TXT, MX, the five A lookups together, finding
}

TEST(ChecksSpf, LookupLimitIsPermerror) {
  FakeDns dns;
  std::string record = "v=spf1";
  for (int i = 0; i < 11; ++i) {
    // By append: GCC 12's -Wrestrict misfires on "literal" + std::string&& in Release.
    std::string name = "n";
    name += std::to_string(i);
    name += ".example.org";
    record += " a:" + name;
    dns.add(name, DnsRecordType::kA, "198.51.100.1");
  }
  dns.add("example.org", DnsRecordType::kTXT, record + " -all");
  SpfCheck check(request("192.0.2.9", "a@example.org"));
  SpfFinding f = dns.run(check);
  EXPECT_EQ(f.result, SpfResult::kPermError);
  EXPECT_EQ(f.problem, "more than 10 DNS-lookup terms");
}

TEST(ChecksSpf, NoRecordIsNoneAndGarbageIsPermerror) {
  FakeDns dns;
  dns.add("example.org", DnsRecordType::kTXT, "not spf");
  dns.add("bad.example.org", DnsRecordType::kTXT, "v=spf1 ip4:192.0.2.300 -all");
  SpfCheck none(request("192.0.2.9", "a@example.org"));
  EXPECT_EQ(dns.run(none).result, SpfResult::kNone);
  SpfCheck nx(request("192.0.2.9", "a@nowhere.example.org"));
  EXPECT_EQ(dns.run(nx).result, SpfResult::kNone);
  SpfCheck bad(request("192.0.2.9", "a@bad.example.org"));
  EXPECT_EQ(dns.run(bad).result, SpfResult::kPermError);
}

TEST(ChecksSpf, AnswersNobodyAskedForAreIgnored) {
  FakeDns dns = google_like();
  SpfCheck check(request("209.85.128.5", "alice@example.org"));
  check.answer({DnsRecordType::kTXT, "example.org"},
               DnsReply{DnsReplyStatus::kOk, {"v=spf1 -all"}});
  EXPECT_EQ(dns.run(check).result, SpfResult::kPass);
}

}  // namespace
}  // namespace mxscreen::checks
