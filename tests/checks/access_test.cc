#include "checks/access.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using protocol::Cidr;
using protocol::IpAddress;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

TEST(ChecksAccess, FileFormatFirstMatchWins) {
  std::vector<AccessFileError> errors;
  auto rules = parse_access_file(
      "# comment\n\n192.0.2.7 reject\n192.0.2.0/24 permit\n2001:db8::/32   reject\n", &errors);
  EXPECT_TRUE(errors.empty());
  AccessList list(rules, {}, {});
  EXPECT_EQ(list.decide(ip("192.0.2.7")), AccessDecision::kReject);
  EXPECT_EQ(list.decide(ip("192.0.2.8")), AccessDecision::kPermit);
  EXPECT_EQ(list.decide(ip("2001:db8:1::5")), AccessDecision::kReject);
  EXPECT_EQ(list.decide(ip("198.51.100.1")), AccessDecision::kDunno);
}

TEST(ChecksAccess, BadLinesAreReportedWithPositions) {
  std::vector<AccessFileError> errors;
  auto rules =
      parse_access_file("192.0.2.0/24 permit\n300.1.1.1 reject\n10.0.0.0/8 maybe\n", &errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].column, 1);
  EXPECT_EQ(errors[1].line, 3);
  EXPECT_EQ(errors[1].column, 12);
  EXPECT_EQ(rules.size(), 1u);
}

TEST(ChecksAccess, DenyBeatsAllowAndFileBeatsBoth) {
  std::vector<AccessFileError> errors;
  auto rules = parse_access_file("127.0.0.9 permit\n", &errors);
  AccessList list(rules, {*Cidr::parse("127.0.0.0/29"), *Cidr::parse("127.0.0.9")},
                  {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")});
  EXPECT_EQ(list.decide(ip("127.0.0.3")), AccessDecision::kReject);
  EXPECT_EQ(list.decide(ip("127.0.0.9")), AccessDecision::kPermit);
  EXPECT_EQ(list.decide(ip("127.0.0.200")), AccessDecision::kPermit);
  EXPECT_EQ(list.decide(ip("::1")), AccessDecision::kPermit);
  EXPECT_EQ(list.decide(ip("::2")), AccessDecision::kDunno);
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksAccess, RejectReplyNamesTheClient) {
  EXPECT_EQ(access_reject_reply(*protocol::IpAddress::parse("192.0.2.9")),
            "554 5.7.1 Service unavailable; client [192.0.2.9] blocked using access list");
}

}  // namespace
}  // namespace mxscreen::checks
