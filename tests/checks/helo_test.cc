// tests/checks/helo_test.cc: the HELO/EHLO name checks (checks/helo.h) with Postfix's reply
// texts, each on its own switch.
#include "checks/helo.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

HeloFacts facts() {
  HeloFacts f;
  f.hostname = "mx.example.net";
  f.own_addresses = {*protocol::IpAddress::parse("192.0.2.25")};
  return f;
}

TEST(ChecksHelo, InvalidName) {
  HeloPolicy p;
  EXPECT_EQ(helo_reject_reply("bad name!", p, facts()),
            "501 5.5.2 <bad name!>: Helo command rejected: Invalid name");
  p.reject_invalid = false;
  p.reject_non_fqdn = false;
  EXPECT_EQ(helo_reject_reply("bad name!", p, facts()), std::nullopt);
}

TEST(ChecksHelo, NonFqdnName) {
  HeloPolicy p;
  EXPECT_EQ(helo_reject_reply("localhost", p, facts()),
            "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname");
  EXPECT_EQ(helo_reject_reply("mail.example.org", p, facts()), std::nullopt);
  EXPECT_EQ(helo_reject_reply("[198.51.100.7]", p, facts()), std::nullopt);  // a literal is fine
  p.reject_non_fqdn = false;
  EXPECT_EQ(helo_reject_reply("localhost", p, facts()), std::nullopt);
}

TEST(ChecksHelo, ClientTextIsEscapedInTheReply) {
  HeloPolicy p;
  auto reply = helo_reject_reply("bad\x01name", p, facts());
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->find('\x01'), std::string::npos);
}

TEST(ChecksHelo, OwnNameIsOffByDefault) {
  EXPECT_FALSE(HeloPolicy{}.reject_own_name);
  EXPECT_EQ(helo_reject_reply("mx.example.net", HeloPolicy{}, facts()), std::nullopt);
}

TEST(ChecksHelo, OwnNameWhateverTheCaseOrTrailingDot) {
  HeloPolicy p;
  p.reject_own_name = true;
  EXPECT_EQ(helo_reject_reply("mx.example.net", p, facts()),
            "554 5.7.1 <mx.example.net>: Helo command rejected: You are not me");
  EXPECT_EQ(helo_reject_reply("MX.Example.NET.", p, facts()),
            "554 5.7.1 <MX.Example.NET.>: Helo command rejected: You are not me");
  auto dotted = facts();
  dotted.hostname = "mx.example.net.";
  EXPECT_TRUE(helo_reject_reply("mx.example.net", p, dotted));
  EXPECT_EQ(helo_reject_reply("mail.example.net", p, facts()), std::nullopt);
  EXPECT_EQ(helo_reject_reply("x.mx.example.net", p, facts()), std::nullopt);
  EXPECT_EQ(helo_reject_reply("mx.example.net.evil.test", p, facts()), std::nullopt);
  EXPECT_EQ(helo_reject_reply("mx.example.net", p, HeloFacts{}), std::nullopt);  // no hostname
}

TEST(ChecksHelo, OwnAddressLiteral) {
  HeloPolicy p;
  p.reject_own_name = true;
  auto f = facts();
  f.own_addresses.push_back(*protocol::IpAddress::parse("2001:db8::25"));
  EXPECT_EQ(helo_reject_reply("[192.0.2.25]", p, f),
            "554 5.7.1 <[192.0.2.25]>: Helo command rejected: You are not me");
  EXPECT_TRUE(helo_reject_reply("[IPv6:2001:db8::25]", p, f));
  EXPECT_TRUE(helo_reject_reply("[ipv6:2001:DB8:0::25]", p, f));
  EXPECT_EQ(helo_reject_reply("[192.0.2.26]", p, f), std::nullopt);
  EXPECT_EQ(helo_reject_reply("[IPv6:2001:db8::26]", p, f), std::nullopt);
  // A local address seen IPv4-mapped (a dual-stack listener) is the same address.
  HeloFacts mapped;
  protocol::IpAddress v6 = protocol::IpAddress::v4(192, 0, 2, 25).as_v6();
  mapped.own_addresses = {v6};
  EXPECT_TRUE(helo_reject_reply("[192.0.2.25]", p, mapped));
  // Not an address, not this host: reject_invalid's business (off here).
  p.reject_invalid = false;
  EXPECT_EQ(helo_reject_reply("[not an address]", p, f), std::nullopt);
}

TEST(ChecksHelo, TheOtherChecksAnswerFirst) {
  HeloPolicy p;
  p.reject_own_name = true;
  auto f = facts();
  f.hostname = "mx";
  EXPECT_EQ(helo_reject_reply("mx", p, f)->substr(0, 3), "504");
  p.reject_non_fqdn = false;
  EXPECT_EQ(helo_reject_reply("mx", p, f)->substr(0, 3), "554");
}

TEST(ChecksHelo, OwnAddressesTakeNoWildcardAndNoTwin) {
  HeloFacts f = facts();
  EXPECT_FALSE(new_own_address(f, *protocol::IpAddress::parse("0.0.0.0")));
  EXPECT_FALSE(new_own_address(f, *protocol::IpAddress::parse("::")));
  EXPECT_FALSE(new_own_address(f, *protocol::IpAddress::parse("192.0.2.25")));
  EXPECT_TRUE(new_own_address(f, *protocol::IpAddress::parse("192.0.2.26")));
}

}  // namespace
}  // namespace mxscreen::checks
