#include "checks/dialogue.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;
using Then = Step::Then;

DialoguePolicy policy() {
  DialoguePolicy p;
  p.hostname = "mx.test";
  p.capabilities = {"SIZE 10240000", "8BITMIME"};
  return p;
}

DialogueClient client() {
  DialogueClient c;
  c.address = *protocol::IpAddress::parse("192.0.2.7");
  c.port = 4711;
  return c;
}

Dialogue dialogue(const DialoguePolicy& p = policy(), DialogueClient c = client()) {
  return Dialogue(std::make_shared<const DialoguePolicy>(p), std::move(c));
}

protocol::Line line(std::string text, bool bare_lf = false) {
  protocol::Line l;
  l.text = std::move(text);
  l.bare_lf = bare_lf;
  return l;
}

Step say(Dialogue& d, const std::string& text) { return d.on_line(line(text)); }

TEST(ChecksDialogue, CleanTransactionHandsOffAtFirstRcpt) {
  Dialogue d = dialogue();
  auto ehlo = say(d, "EHLO mail.example.org");
  EXPECT_EQ(ehlo.reply, "250-mx.test\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
  EXPECT_EQ(say(d, "MAIL FROM:<a@example.org> SIZE=100").reply, "250 2.1.0 Ok\r\n");
  auto rcpt = say(d, "RCPT TO:<user@example.test>");
  EXPECT_EQ(rcpt.then, Then::kHandoff);
  EXPECT_TRUE(rcpt.reply.empty());
  EXPECT_TRUE(d.esmtp());
  EXPECT_EQ(d.helo(), "mail.example.org");
  EXPECT_EQ(d.mail_line(), "MAIL FROM:<a@example.org> SIZE=100");
  EXPECT_EQ(d.rcpt_line(), "RCPT TO:<user@example.test>");
}

TEST(ChecksDialogue, NonFqdnHeloIsRejectedAtRcptWithPostfixText) {
  Dialogue d = dialogue();
  EXPECT_EQ(say(d, "EHLO localhost").then, Then::kContinue);
  say(d, "MAIL FROM:<a@example.org>");
  auto rcpt = say(d, "RCPT TO:<user@example.test>");
  EXPECT_EQ(rcpt.reply,
            "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname\r\n");
  ASSERT_FALSE(rcpt.findings.empty());
  EXPECT_EQ(rcpt.findings[0].word, "NOQUEUE");
  EXPECT_NE(rcpt.findings[0].detail.find("NOQUEUE: reject: RCPT from [192.0.2.7]:4711: 504"),
            std::string::npos);
  EXPECT_NE(rcpt.findings[0].detail.find("to=<user@example.test> proto=ESMTP helo=<localhost>"),
            std::string::npos);
}

TEST(ChecksDialogue, PipeliningWithoutOfferIsEnforcedAtRcpt) {
  Dialogue d = dialogue();
  say(d, "EHLO mail.example.org");
  auto mail = d.on_line(line("MAIL FROM:<a@example.org>"), "RCPT TO:<user@example.test>\r\n");
  EXPECT_EQ(mail.reply, "250 2.1.0 Ok\r\n");
  ASSERT_EQ(mail.findings.size(), 1u);
  EXPECT_EQ(mail.findings[0].test, "pipelining");
  EXPECT_EQ(mail.findings[0].outcome, "enforce");
  EXPECT_EQ(
      mail.findings[0].detail,
      "COMMAND PIPELINING from [192.0.2.7]:4711 after MAIL: RCPT TO:<user@example.test>\\x0d\\x0a");
  auto rcpt = say(d, "RCPT TO:<user@example.test>");
  EXPECT_EQ(rcpt.reply.substr(0, 10), "550 5.7.1 ");
  EXPECT_NE(rcpt.then, Then::kHandoff);
}

TEST(ChecksDialogue, HttpRequestIsDropped) {
  Dialogue d = dialogue();
  auto step = say(d, "GET / HTTP/1.1");
  EXPECT_TRUE(step.closes());
  EXPECT_EQ(step.sent(), "521 5.5.1 Protocol error\r\n");
  ASSERT_FALSE(step.findings.empty());
  EXPECT_EQ(step.findings[0].test, "non_smtp");
}

TEST(ChecksDialogue, BareNewlineFollowsItsAction) {
  auto p = policy();
  p.bare_newline = Action::kDrop;
  Dialogue d = dialogue(p);
  auto step = d.on_line(line("EHLO mail.example.org", true));
  EXPECT_TRUE(step.closes());
  p.bare_newline = Action::kIgnore;
  Dialogue ignoring = dialogue(p);
  step = ignoring.on_line(line("EHLO mail.example.org", true));
  EXPECT_EQ(step.then, Then::kContinue);
  EXPECT_EQ(step.findings.at(0).outcome, "ignore");
}

TEST(ChecksDialogue, ErrorSleepsThenHardLimit) {
  auto p = policy();
  p.errors = {1000ms, 1, 3, 100};
  Dialogue d = dialogue(p);
  auto first = say(d, "BOGUS");
  EXPECT_EQ(first.reply, "500 5.5.2 Error: command not recognized\r\n");
  EXPECT_EQ(first.delay, 0ms);
  auto second = say(d, "BOGUS");
  EXPECT_EQ(second.delay, 1000ms);
  auto third = say(d, "BOGUS");
  EXPECT_EQ(third.sent(), "421 4.7.0 mx.test Error: too many errors\r\n");
  EXPECT_TRUE(third.closes());
}

TEST(ChecksDialogue, VerbReplies) {
  Dialogue d = dialogue();
  EXPECT_EQ(say(d, "MAIL FROM:<a@example.org>").reply, "503 5.5.1 Error: send HELO/EHLO first\r\n");
  say(d, "HELO mail.example.org");
  EXPECT_EQ(say(d, "VRFY root").reply, "502 5.5.1 VRFY command is disabled\r\n");
  EXPECT_EQ(say(d, "AUTH LOGIN").reply, "503 5.5.1 Error: authentication not enabled\r\n");
  EXPECT_EQ(say(d, "DATA").reply, "503 5.5.1 Error: need RCPT command\r\n");
  EXPECT_EQ(say(d, "NOOP").reply, "250 2.0.0 Ok\r\n");
  EXPECT_EQ(say(d, "STARTTLS").reply, "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_EQ(say(d, "RCPT TO:<a@example.test>").reply, "503 5.5.1 Error: need MAIL command\r\n");
  say(d, "MAIL FROM:<a@example.org>");
  EXPECT_EQ(say(d, "DATA").reply, "554 5.5.1 Error: no valid recipients\r\n");
  auto quit = say(d, "QUIT");
  EXPECT_EQ(quit.sent(), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(quit.closes());
}

TEST(ChecksDialogue, LongLineAndNulAreErrors) {
  Dialogue d = dialogue();
  protocol::Line l = line(std::string(2048, 'A'));
  l.too_long = true;
  EXPECT_EQ(d.on_line(l).reply, "500 5.5.2 Error: line too long\r\n");
  protocol::Line nul = line(std::string("EHLO a\0b", 8));
  nul.has_nul = true;
  EXPECT_EQ(d.on_line(nul).reply.substr(0, 3), "500");
  EXPECT_EQ(d.errors(), 2);
}

TEST(ChecksDialogue, CommandCountLimit) {
  auto p = policy();
  p.command_count_limit = 3;
  Dialogue d = dialogue(p);
  say(d, "NOOP");
  say(d, "NOOP");
  say(d, "NOOP");
  auto fourth = say(d, "NOOP");
  EXPECT_TRUE(fourth.closes());
  EXPECT_EQ(fourth.sent().substr(0, 9), "421 4.7.0");
}

TEST(ChecksDialogue, HandoffAfterHeloWhenOnlyHeloChecksAreOn) {
  auto p = policy();
  p.handoff_after_helo = true;
  Dialogue d = dialogue(p);
  EXPECT_EQ(say(d, "EHLO localhost").then, Then::kContinue);  // fails: dialogue goes on
  Dialogue good = dialogue(p);
  auto step = say(good, "EHLO mail.example.org");
  EXPECT_EQ(step.then, Then::kHandoff);
  EXPECT_EQ(step.reply.substr(0, 4), "250-");
}

TEST(ChecksDialogue, PregreetEnforceRejectsEveryRcpt) {
  auto c = client();
  c.enforced_by = "pregreet";
  Dialogue d = dialogue(policy(), c);
  say(d, "EHLO mail.example.org");
  say(d, "MAIL FROM:<a@example.org>");
  auto rcpt = say(d, "RCPT TO:<user@example.test>");
  EXPECT_EQ(rcpt.reply,
            "550 5.7.1 Service unavailable; client [192.0.2.7] blocked by the pregreet test\r\n");
}

TEST(ChecksDialogue, TimeLimit) {
  Dialogue d = dialogue();
  auto step = d.on_time_limit();
  EXPECT_TRUE(step.closes());
  EXPECT_EQ(step.sent(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksDialogue, FakeMxTempfailsEveryRcpt) {
  auto c = client();
  c.tempfail_rcpt = true;
  Dialogue d = dialogue(policy(), c);
  say(d, "EHLO mail.example.org");
  say(d, "MAIL FROM:<a@example.org>");
  auto rcpt = say(d, "RCPT TO:<user@example.test>");
  EXPECT_EQ(rcpt.reply.substr(0, 10), "450 4.7.1 ");
  EXPECT_NE(rcpt.then, Then::kHandoff);
  EXPECT_EQ(rcpt.findings.at(0).test, "fake_mx");
}

}  // namespace
}  // namespace mxscreen::checks
