// tests/checks/domain_test.cc: the DNS tests of names a client gives: which name is looked up,
// how A/AAAA/MX answers combine, and the RCPT reply in Postfix's restriction order.
#include "checks/domain.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

TEST(DomainNames, HeloLookupName) {
  EXPECT_EQ(helo_lookup_name("Mail.Example.ORG."), "mail.example.org");
  EXPECT_EQ(helo_lookup_name("[192.0.2.1]"), "");  // address literal: nothing to look up
  EXPECT_EQ(helo_lookup_name("localhost"), "");    // no dot: reject_non_fqdn's business
  EXPECT_EQ(helo_lookup_name(""), "");
}

TEST(DomainNames, SenderLookupDomain) {
  EXPECT_EQ(sender_lookup_domain("User@Example.COM"), "example.com");
  EXPECT_EQ(sender_lookup_domain("\"a@b\"@example.net"), "example.net");
  EXPECT_EQ(sender_lookup_domain(""), "");            // null sender
  EXPECT_EQ(sender_lookup_domain("postmaster"), "");  // unqualified
  EXPECT_EQ(sender_lookup_domain("u@[192.0.2.1]"), "");
}

TEST(DomainFacts, AnyRecordWinsElseAnyFailure) {
  EXPECT_EQ(combine_name_answers(true, true), NameFact::kExists);
  EXPECT_EQ(combine_name_answers(false, true), NameFact::kTempFail);
  EXPECT_EQ(combine_name_answers(false, false), NameFact::kNone);
}

const DomainNames kNames{"192.0.2.7", "host.example.net", "mail.example.org", "user@example.com"};
// The admin names dbl.test and rbl.test to clients; any other zone stays unnamed.
const DnsblReplyMap kShown{{"dbl.test", "dbl.test"}, {"rbl.test", "rbl.test"}};

TEST(DomainReply, NothingFailsNothingSaid) {
  DomainFacts facts;
  facts.helo = NameFact::kExists;
  facts.sender = NameFact::kExists;
  EXPECT_FALSE(domain_reject_reply(facts, kNames, kShown));
  EXPECT_FALSE(domain_reject_reply({}, kNames, kShown));
}

TEST(DomainReply, ProvenAbsenceIs5xxFailureIs4xx) {
  DomainFacts facts;
  facts.helo = NameFact::kNone;
  auto r = domain_reject_reply(facts, kNames, kShown);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply, "550 5.7.1 <mail.example.org>: Helo command rejected: Host not found");
  EXPECT_EQ(r->test, "helo_unknown");
  facts.helo = NameFact::kTempFail;
  EXPECT_EQ(domain_reject_reply(facts, kNames, kShown)->reply,
            "450 4.7.1 <mail.example.org>: Helo command rejected: Host not found");

  DomainFacts sender;
  sender.sender = NameFact::kNone;
  EXPECT_EQ(domain_reject_reply(sender, kNames, kShown)->reply,
            "550 5.1.8 <user@example.com>: Sender address rejected: Domain not found");
  sender.sender = NameFact::kTempFail;
  EXPECT_EQ(domain_reject_reply(sender, kNames, kShown)->reply,
            "450 4.1.8 <user@example.com>: Sender address rejected: Domain not found");
}

TEST(DomainReply, PostfixOrderClientThenHeloThenSender) {
  DomainFacts facts;
  facts.sender_listed = RhsblListing{"dbl.test"};
  EXPECT_EQ(domain_reject_reply(facts, kNames, kShown)->reply,
            "554 5.7.1 Service unavailable; Sender address [user@example.com] blocked using "
            "dbl.test");
  facts.sender = NameFact::kNone;
  EXPECT_EQ(domain_reject_reply(facts, kNames, kShown)->test, "sender_unknown");
  facts.helo_listed = RhsblListing{"dbl.test"};
  EXPECT_EQ(domain_reject_reply(facts, kNames, kShown)->reply,
            "554 5.7.1 Service unavailable; Helo command [mail.example.org] blocked using "
            "dbl.test");
  facts.helo = NameFact::kTempFail;
  EXPECT_EQ(domain_reject_reply(facts, kNames, kShown)->test, "helo_unknown");
  facts.reverse_listed = RhsblListing{"rbl.test"};
  auto r = domain_reject_reply(facts, kNames, kShown);
  EXPECT_EQ(r->reply,
            "554 5.7.1 Service unavailable; Client host [host.example.net] blocked using rbl.test");
  EXPECT_EQ(r->test, "reverse_rhsbl");
}

TEST(DomainReply, ClientTextIsEscaped) {
  DomainNames names = kNames;
  names.helo = "evil\r\n250 ok";
  DomainFacts facts;
  facts.helo = NameFact::kNone;
  auto r = domain_reject_reply(facts, names, kShown);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply.find('\r'), std::string::npos);
  EXPECT_EQ(r->reply.find('\n'), std::string::npos);
}

TEST(DomainReply, UnmappedZoneIsNeverNamedToTheClient) {
  // A Spamhaus DQS zone holds the customer's key: the client reads the map's name or nothing.
  DomainFacts facts;
  facts.sender_listed = RhsblListing{"secretkey123.dbl.dq.spamhaus.net"};
  auto r = domain_reject_reply(facts, kNames, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply,
            "554 5.7.1 Service unavailable; Sender address [user@example.com] blocked using a "
            "DNS blocklist");
  DnsblReplyMap map{{"secretkey123.dbl.dq.spamhaus.net", "dbl.spamhaus.org"}};
  EXPECT_EQ(domain_reject_reply(facts, kNames, map)->reply,
            "554 5.7.1 Service unavailable; Sender address [user@example.com] blocked using "
            "dbl.spamhaus.org");
}

}  // namespace
}  // namespace mxscreen::checks
