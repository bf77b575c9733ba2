// tests/checks/fake_mx_test.cc: the fake MX (checks/fake_mx.h): the FAKE-MX line and counter of
// a hit, what each fake_mx.action tells the client, and the nolisting pass.
#include "checks/fake_mx.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using Then = Finding::Then;
const char* kWho = "[192.0.2.7]:4711";

TEST(ChecksFakeMx, HitActionsAndNolistingPass) {
  auto hit = fake_mx_hit("tempfail", kWho);
  EXPECT_EQ(hit.detail, "FAKE-MX [192.0.2.7]:4711 action=tempfail");
  EXPECT_EQ(hit.labels, "action=\"tempfail\"");
  EXPECT_EQ(hit.then, Then::kContinue);
  EXPECT_EQ(fake_mx_action_finding(FakeMxAction::kReset).then, Then::kReset);
  auto tempfail = fake_mx_action_finding(FakeMxAction::kTempfail);
  EXPECT_EQ(tempfail.then, Then::kReplyAndClose);
  EXPECT_EQ(tempfail.reply, "421 4.3.2 Service temporarily unavailable");
  EXPECT_EQ(tempfail.test, "fake_mx");
  EXPECT_EQ(fake_mx_action_finding(FakeMxAction::kTempfailRcpt).then, Then::kContinue);
  EXPECT_EQ(nolisting_pass_finding(kWho).detail,
            "FAKE-MX pass [192.0.2.7]:4711: tried the fake MX first, then the real one");
}

TEST(ChecksFakeMx, HitNamesTheActionInWordsLineAndCounter) {
  auto hit = fake_mx_hit("reset", "[2001:db8::7]:25000");
  EXPECT_EQ(hit.test, "fake_mx");
  EXPECT_EQ(hit.outcome, "reset");
  EXPECT_EQ(hit.word, "FAKE-MX");
  EXPECT_EQ(hit.detail, "FAKE-MX [2001:db8::7]:25000 action=reset");
  ASSERT_EQ(hit.fields.size(), 1u);
  EXPECT_EQ(hit.fields[0].first, "action");
  EXPECT_EQ(hit.fields[0].second, "reset");
  EXPECT_EQ(hit.counter, "mxscreen_fake_mx_hits_total");
  EXPECT_EQ(hit.labels, "action=\"reset\"");
  EXPECT_TRUE(hit.reply.empty());
  EXPECT_TRUE(hit.strike.empty());   // the ban follows repeated hits (checks/ban.h), not one
  EXPECT_FALSE(hit.ends_session());  // the action finding decides that
}

TEST(ChecksFakeMx, EachActionTellsTheClient) {
  auto reset = fake_mx_action_finding(FakeMxAction::kReset);
  EXPECT_EQ(reset.test, "fake_mx");
  EXPECT_EQ(reset.outcome, "reset");
  EXPECT_TRUE(reset.reply.empty());  // a closed port says nothing
  EXPECT_TRUE(reset.ends_session());
  EXPECT_TRUE(reset.word.empty());  // the hit was already logged

  auto tempfail = fake_mx_action_finding(FakeMxAction::kTempfail);
  EXPECT_EQ(tempfail.outcome, "tempfail");
  EXPECT_TRUE(tempfail.ends_session());
  EXPECT_TRUE(tempfail.strike.empty());

  auto talk = fake_mx_action_finding(FakeMxAction::kTempfailRcpt);
  EXPECT_EQ(talk.test, "fake_mx");
  EXPECT_EQ(talk.outcome, "tempfail_rcpt");
  EXPECT_TRUE(talk.reply.empty());  // the dialogue answers 450 at every RCPT
  EXPECT_FALSE(talk.ends_session());
}

TEST(ChecksFakeMx, NolistingPassIsItsOwnTest) {
  auto pass = nolisting_pass_finding(kWho);
  EXPECT_EQ(pass.test, "nolisting");
  EXPECT_EQ(pass.outcome, "pass");
  EXPECT_EQ(pass.word, "FAKE-MX");
  EXPECT_EQ(pass.counter, "mxscreen_nolisting_pass_total");
  EXPECT_TRUE(pass.labels.empty());
  EXPECT_TRUE(pass.reply.empty());
  EXPECT_EQ(pass.then, Then::kContinue);
}

}  // namespace
}  // namespace mxscreen::checks
