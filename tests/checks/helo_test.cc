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

}  // namespace
}  // namespace mxscreen::checks
