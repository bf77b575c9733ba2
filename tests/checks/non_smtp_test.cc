// tests/checks/non_smtp_test.cc: the non-SMTP command test (checks/non_smtp.h): which lines
// are forbidden (postscreen_forbidden_commands and header-like lines) and the verdict each
// action gives.
#include "checks/non_smtp.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

TEST(ChecksNonSmtp, DefaultForbiddenCommands) {
  EXPECT_EQ(default_forbidden_commands(),
            (std::vector<std::string>{"CONNECT", "GET", "POST", "USER", "PASS"}));
}

TEST(ChecksNonSmtp, ForbiddenVerbsAndHeadersAreHits) {
  const auto& forbidden = default_forbidden_commands();
  for (const char* line : {"GET / HTTP/1.1", "get /index.html HTTP/1.0", "POST /cgi-bin/x HTTP/1.1",
                           "CONNECT mx.example.org:25 HTTP/1.0", "USER bob", "PASS secret",
                           "Host: mx.example.org", "User-Agent: curl/8.0", "Subject:hello"}) {
    Verdict v = non_smtp_verdict(Action::kDrop, line, forbidden);
    EXPECT_EQ(v.outcome, Outcome::kDrop) << line;
    EXPECT_EQ(v.reason, "non-SMTP command") << line;
  }
}

TEST(ChecksNonSmtp, SmtpCommandsPass) {
  const auto& forbidden = default_forbidden_commands();
  for (const char* line : {"EHLO mail.example.org", "HELO mail.example.org",
                           "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "MAIL: x",
                           "DATA", "QUIT", "NOOP", ": no name", "", "GETTER x", "Host : spaced"}) {
    Verdict v = non_smtp_verdict(Action::kDrop, line, forbidden);
    EXPECT_TRUE(v.passed()) << line;
    EXPECT_TRUE(v.reason.empty()) << line;
  }
}

TEST(ChecksNonSmtp, VerdictFollowsTheAction) {
  const auto& forbidden = default_forbidden_commands();
  EXPECT_EQ(non_smtp_verdict(Action::kOff, "GET / HTTP/1.1", forbidden).outcome, Outcome::kPass);
  EXPECT_EQ(non_smtp_verdict(Action::kIgnore, "GET / HTTP/1.1", forbidden).outcome,
            Outcome::kIgnore);
  EXPECT_EQ(non_smtp_verdict(Action::kEnforce, "GET / HTTP/1.1", forbidden).outcome,
            Outcome::kEnforce);
  EXPECT_EQ(non_smtp_verdict(Action::kDrop, "GET / HTTP/1.1", forbidden).outcome, Outcome::kDrop);
}

TEST(ChecksNonSmtp, ConfiguredListReplacesTheDefault) {
  std::vector<std::string> forbidden = {"XYZZY"};
  EXPECT_EQ(non_smtp_verdict(Action::kDrop, "xyzzy plugh", forbidden).outcome, Outcome::kDrop);
  EXPECT_TRUE(non_smtp_verdict(Action::kDrop, "GET / HTTP/1.1", forbidden).passed());
  // A header-like line is a hit whatever the list says.
  EXPECT_EQ(non_smtp_verdict(Action::kDrop, "Host: x", {}).outcome, Outcome::kDrop);
  // An empty entry in the list matches nothing.
  EXPECT_TRUE(non_smtp_verdict(Action::kDrop, "", {""}).passed());
}

}  // namespace
}  // namespace mxscreen::checks
