// tests/checks/greylist_allowlist_test.cc: postgrey-style allowlist files for greylisting.
#include "checks/greylist_allowlist.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace mxscreen::checks {
namespace {

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

TEST(GreylistClientAllowlist, NetworksAddressesNamesAndRegexes) {
  std::vector<AccessFileError> errors;
  auto list = ClientAllowlist::parse(
      "# partners\n192.0.2.0/24\n198.51.100.7   # one host\n2001:db8::/32\n"
      "Example.COM.\n/^mail-[0-9]+\\.example\\.net$/\n\n",
      &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].message;
  std::string why;
  EXPECT_TRUE(list.matches(ip("192.0.2.200"), "", &why));
  EXPECT_EQ(why, "192.0.2.0/24");
  EXPECT_TRUE(list.matches(ip("198.51.100.7"), ""));
  EXPECT_FALSE(list.matches(ip("198.51.100.8"), ""));
  EXPECT_TRUE(list.matches(ip("2001:db8::25"), ""));
  // Names: only the verified one counts, by suffix on a label boundary or by regex.
  EXPECT_TRUE(list.matches(ip("203.0.113.1"), "mx1.example.com", &why));
  EXPECT_EQ(why, "example.com");
  EXPECT_TRUE(list.matches(ip("203.0.113.1"), "EXAMPLE.com."));
  EXPECT_FALSE(list.matches(ip("203.0.113.1"), "notexample.com"));
  EXPECT_TRUE(list.matches(ip("203.0.113.1"), "MAIL-42.example.net", &why));
  EXPECT_EQ(why, "/^mail-[0-9]+\\.example\\.net$/");
  EXPECT_FALSE(list.matches(ip("203.0.113.1"), "mail-x.example.net"));
  EXPECT_FALSE(list.matches(ip("203.0.113.1"), ""));
  EXPECT_TRUE(list.needs_name());
}

TEST(GreylistClientAllowlist, BadLinesAreReportedWithTheirPlace) {
  std::vector<AccessFileError> errors;
  auto list =
      ClientAllowlist::parse("192.0.2.0/24\n  what?ever\n/(/\n10.0.0.0/8 extra\n/x\n", &errors);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].column, 3);
  EXPECT_EQ(errors[1].line, 3);
  EXPECT_NE(errors[1].message.find("invalid regex /(/"), std::string::npos);
  EXPECT_EQ(errors[2].line, 4);
  EXPECT_NE(errors[2].message.find("one entry per line"), std::string::npos);
  EXPECT_EQ(errors[3].line, 5);
  EXPECT_TRUE(list.matches(ip("192.0.2.1"), ""));  // the good lines are kept
  EXPECT_FALSE(list.needs_name());
}

TEST(GreylistRecipientAllowlist, LocalPartsAddressesDomainsAndRegexes) {
  std::vector<AccessFileError> errors;
  auto list = RecipientAllowlist::parse(
      "postmaster@\nabuse@example.org\nlists.example.net\n/^bounce-.*@example\\.com$/\n", &errors);
  ASSERT_TRUE(errors.empty());
  std::string why;
  EXPECT_TRUE(list.matches("Postmaster@anything.test", &why));
  EXPECT_EQ(why, "postmaster@");
  EXPECT_TRUE(list.matches("ABUSE@example.org"));
  EXPECT_FALSE(list.matches("abuse@example.com"));
  EXPECT_TRUE(list.matches("team@lists.example.net"));
  EXPECT_TRUE(list.matches("team@eu.lists.example.net"));
  EXPECT_FALSE(list.matches("team@biglists.example.net"));
  EXPECT_TRUE(list.matches("bounce-123@example.com"));
  EXPECT_FALSE(list.matches("user@example.com"));
  EXPECT_FALSE(RecipientAllowlist::parse("", &errors).matches("postmaster@example.org"));
}

TEST(GreylistRecipientAllowlist, BadLines) {
  std::vector<AccessFileError> errors;
  RecipientAllowlist::parse("@\n@example.org\nuser@bad_domain!\nbad domain\n", &errors);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_EQ(errors[3].line, 4);
}

// An admin's pattern with nested repetition against a client-chosen recipient: a backtracking
// engine (std::regex, before RE2) took seconds per RCPT on this; RE2 is linear in the input.
TEST(GreylistRecipientAllowlist, PathologicalRegexCostsLinearTime) {
  std::vector<AccessFileError> errors;
  auto list = RecipientAllowlist::parse("/^(a+)+@example\\.org$/\n/^(.*a){20}x/\n", &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].message;
  const std::string recipient = std::string(30, 'a') + "!@example.org";
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(list.matches(recipient));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::milliseconds(200));
  EXPECT_TRUE(list.matches(std::string(30, 'a') + "@example.org"));
  // Long client-chosen input (a 2,000-byte local part) stays cheap too.
  EXPECT_FALSE(list.matches(std::string(2000, 'a') + "!@example.org"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
}

TEST(GreylistClientAllowlist, RegexErrorsPointAtTheFragment) {
  std::vector<AccessFileError> errors;
  ClientAllowlist::parse("  /^mail-(x+\\.example$/\n/a**/\n/[z-a]/\n", &errors);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_NE(errors[0].message.find("invalid regex /^mail-(x+\\.example$/: missing )"),
            std::string::npos)
      << errors[0].message;
  EXPECT_EQ(errors[1].line, 2);
  EXPECT_EQ(errors[1].column, 3) << errors[1].message;  // "**" starts at column 3
  EXPECT_EQ(errors[2].line, 3);
  EXPECT_EQ(errors[2].column, 3) << errors[2].message;  // the range "z-a"
}

}  // namespace
}  // namespace mxscreen::checks
