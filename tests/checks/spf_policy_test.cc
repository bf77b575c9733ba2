// tests/checks/spf_policy_test.cc: what mxscreen does with an SPF finding (checks/spf_policy.h):
// which results each sender.spf mode refuses, the reply and policy action texts, the
// Received-SPF-style log facts and the SPF line, and the RCPT finding.
#include "checks/spf_policy.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using Then = Finding::Then;
const char* kWho = "[192.0.2.7]:4711";

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

SpfRequest request(const char* client, const char* mail_from,
                   const char* helo = "mail.example.org") {
  return SpfRequest{ip(client), helo, mail_from, "mx.example.net", 1700000000};
}

SpfFinding finding(SpfResult result) {
  SpfFinding f;
  f.result = result;
  return f;
}

TEST(ChecksSpfPolicy, ModeNamesAreTheConfigWords) {
  EXPECT_EQ(to_string(SpfMode::kOff), "off");
  EXPECT_EQ(to_string(SpfMode::kLog), "log");
  EXPECT_EQ(to_string(SpfMode::kRejectFail), "reject_fail");
  EXPECT_EQ(to_string(SpfMode::kRejectFailSoftfail), "reject_fail_softfail");
}

TEST(ChecksSpfPolicy, OnlyFailAndAskedSoftfailAreRefused) {
  SpfFinding f;
  for (SpfResult r : {SpfResult::kNone, SpfResult::kNeutral, SpfResult::kPass,
                      SpfResult::kTempError, SpfResult::kPermError}) {
    f.result = r;
    for (SpfMode m :
         {SpfMode::kOff, SpfMode::kLog, SpfMode::kRejectFail, SpfMode::kRejectFailSoftfail}) {
      EXPECT_FALSE(spf_rejects(f, m)) << to_string(r) << " " << to_string(m);
    }
  }
  f.result = SpfResult::kFail;
  EXPECT_FALSE(spf_rejects(f, SpfMode::kLog));
  EXPECT_TRUE(spf_rejects(f, SpfMode::kRejectFail));
  EXPECT_TRUE(spf_rejects(f, SpfMode::kRejectFailSoftfail));
  f.result = SpfResult::kSoftFail;
  EXPECT_FALSE(spf_rejects(f, SpfMode::kRejectFail));
  EXPECT_TRUE(spf_rejects(f, SpfMode::kRejectFailSoftfail));
}

TEST(ChecksSpfPolicy, ReplyTextsShowTheExplanationSafely) {
  SpfFinding f;
  f.result = SpfResult::kFail;
  EXPECT_EQ(spf_reject_reply(f, "a@example.org"),
            "550 5.7.23 <a@example.org>: Sender address rejected: Message rejected due to: SPF "
            "fail - not authorized");
  f.explanation = "see\r\nhttp://x";
  EXPECT_EQ(spf_policy_action(f),
            "550 5.7.23 Message rejected due to: SPF fail - not authorized. see??http://x");
  f.explanation = std::string(500, 'x');
  EXPECT_EQ(spf_policy_action(f).size(),
            std::string("550 5.7.23 Message rejected due to: SPF fail - not authorized. ").size() +
                kSpfExplanationShown);
}

TEST(ChecksSpfPolicy, LogFactsEscapeClientText) {
  SpfFinding f;
  f.result = SpfResult::kPass;
  f.identity = "mailfrom";
  f.domain = "example.org";
  f.mechanism = "ip4:192.0.2.0/24";
  SpfRequest r = request("192.0.2.7",
                         "a\x01"
                         "b@example.org",
                         "evil\nhelo");
  EXPECT_EQ(spf_log_facts(f, r),
            "identity=mailfrom; client-ip=192.0.2.7; helo=evil\\x0ahelo; "
            "envelope-from=<a\\x01b@example.org>; receiver=mx.example.net; domain=example.org; "
            "mechanism=ip4:192.0.2.0/24");
}

TEST(ChecksSpfPolicy, ReportAndRcpt) {
  SpfFinding fail;
  fail.result = SpfResult::kFail;
  fail.identity = "mailfrom";
  fail.domain = "example.org";
  fail.mechanism = "-all";
  SpfRequest request{ip("192.0.2.7"), "mx.example.org", "a@example.org", "mx.test", 0};
  auto report = spf_report(fail, request, kWho, "session", true);
  EXPECT_EQ(report.word, "SPF");
  EXPECT_FALSE(report.client_field);
  EXPECT_EQ(report.detail.substr(0, 31), "SPF fail [192.0.2.7]:4711: iden");
  EXPECT_NE(report.detail.find("; action=reject (session)"), std::string::npos);
  EXPECT_EQ(report.labels, "result=\"fail\",side=\"session\",action=\"reject\"");
  auto rcpt = spf_rcpt_finding(fail, SpfMode::kRejectFail, "a@example.org");
  EXPECT_EQ(rcpt.then, Then::kRejectRcpt);
  EXPECT_EQ(rcpt.reply, spf_reject_reply(fail, "a@example.org"));
  EXPECT_EQ(spf_rcpt_finding(fail, SpfMode::kLog, "a@example.org").then, Then::kContinue);
}

TEST(ChecksSpfPolicy, SoftfailReplyAndEscapedSender) {
  SpfFinding soft = finding(SpfResult::kSoftFail);
  EXPECT_EQ(spf_reject_reply(soft, "a\r\nb@example.org"),
            "550 5.7.23 <a\\x0d\\x0ab@example.org>: Sender address rejected: Message rejected "
            "due to: SPF softfail - not authorized");
  EXPECT_EQ(spf_policy_action(soft),
            "550 5.7.23 Message rejected due to: SPF softfail - not authorized");
  SpfFinding fail = finding(SpfResult::kFail);
  fail.explanation = "a@example.org is not allowed to send from 192.0.2.7";
  EXPECT_EQ(spf_reject_reply(fail, "a@example.org"),
            "550 5.7.23 <a@example.org>: Sender address rejected: Message rejected due to: SPF "
            "fail - not authorized. a@example.org is not allowed to send from 192.0.2.7");
}

TEST(ChecksSpfPolicy, LogFactsOfAnErrorAndOfTheHeloIdentity) {
  SpfFinding error = finding(SpfResult::kPermError);
  error.identity = "helo";
  error.domain = "mail.example.org";
  error.problem = "unknown or malformed mechanism: \"foo\"";
  EXPECT_EQ(spf_log_facts(error, request("2001:db8::7", "")),
            "identity=helo; client-ip=2001:db8::7; helo=mail.example.org; envelope-from=<>; "
            "receiver=mx.example.net; domain=mail.example.org; problem=\"unknown or malformed "
            "mechanism: \"foo\"\"");
}

TEST(ChecksSpfPolicy, ReportOfAnAcceptOnThePolicyService) {
  SpfFinding pass = finding(SpfResult::kPass);
  pass.identity = "mailfrom";
  pass.domain = "example.org";
  pass.mechanism = "ip4:192.0.2.0/24";
  auto report = spf_report(pass, request("192.0.2.7", "a@example.org"), kWho, "policy", false);
  EXPECT_EQ(report.test, "spf");
  EXPECT_EQ(report.outcome, "pass");
  EXPECT_EQ(report.detail,
            "SPF pass [192.0.2.7]:4711: identity=mailfrom; client-ip=192.0.2.7; "
            "helo=mail.example.org; envelope-from=<a@example.org>; receiver=mx.example.net; "
            "domain=example.org; mechanism=ip4:192.0.2.0/24; action=accept (policy)");
  EXPECT_EQ(report.counter, "mxscreen_spf_total");
  EXPECT_EQ(report.labels, "result=\"pass\",side=\"policy\",action=\"accept\"");
  ASSERT_EQ(report.fields.size(), 3u);
  EXPECT_EQ(report.fields[0].second, "pass");
  EXPECT_EQ(report.fields[1].second, "policy");
  EXPECT_EQ(report.fields[2].second, "accept");
  EXPECT_EQ(report.then, Then::kContinue);
  EXPECT_TRUE(report.reply.empty());
}

TEST(ChecksSpfPolicy, RcptFindingPerMode) {
  SpfFinding soft = finding(SpfResult::kSoftFail);
  for (SpfMode m : {SpfMode::kOff, SpfMode::kLog, SpfMode::kRejectFail}) {
    auto f = spf_rcpt_finding(soft, m, "a@example.org");
    EXPECT_EQ(f.test, "spf") << to_string(m);
    EXPECT_EQ(f.outcome, "pass") << to_string(m);
    EXPECT_EQ(f.then, Then::kContinue) << to_string(m);
    EXPECT_TRUE(f.reply.empty()) << to_string(m);
  }
  auto refused = spf_rcpt_finding(soft, SpfMode::kRejectFailSoftfail, "a@example.org");
  EXPECT_EQ(refused.outcome, "reject");
  EXPECT_EQ(refused.then, Then::kRejectRcpt);
  EXPECT_EQ(refused.reply,
            "550 5.7.23 <a@example.org>: Sender address rejected: Message rejected due to: SPF "
            "softfail - not authorized");
  EXPECT_FALSE(refused.ends_session());
  EXPECT_EQ(spf_rcpt_finding(finding(SpfResult::kTempError), SpfMode::kRejectFailSoftfail,
                             "a@example.org")
                .then,
            Then::kContinue);
}

}  // namespace
}  // namespace mxscreen::checks
