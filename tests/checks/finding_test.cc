// tests/checks/finding_test.cc: the one shape every check answers in (checks/finding.h), and
// the findings of the checks that answer outside the dialogue: the words, log lines, counters,
// replies and next steps a session applies, byte for byte as the README documents them.
#include "checks/finding.h"

#include <gtest/gtest.h>

#include "checks/access.h"
#include "checks/ban.h"
#include "checks/dialogue.h"
#include "checks/dnsbl.h"
#include "checks/domain.h"
#include "checks/greylist.h"
#include "checks/limits.h"
#include "checks/pregreet.h"
#include "checks/spam_trap.h"

namespace mxscreen::checks {
namespace {

using Then = Finding::Then;
using namespace std::chrono_literals;

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }
const char* kWho = "[192.0.2.7]:4711";

TEST(ChecksFinding, ClosingHitStrikesWhenThePlanSaysSo) {
  Finding pipelining;
  pipelining.test = "pipelining";
  pipelining.closes(Then::kReplyAndClose, "521 5.5.1 Protocol error");
  EXPECT_TRUE(pipelining.ends_session());
  EXPECT_EQ(pipelining.strike, "pipelining");
  EXPECT_EQ(pipelining.reply, "521 5.5.1 Protocol error");

  Finding errors;
  errors.test = "errors";  // errors.hard_limit
  EXPECT_EQ(errors.closes(Then::kReplyAndClose, "421").strike, "errors");

  Finding limit;
  limit.test = "client_limit";
  EXPECT_EQ(limit.closes(Then::kReplyAndClose, "421").strike, "");

  Finding pass;
  EXPECT_FALSE(pass.ends_session());
  pass.test = "dnsbl";
  pass.outcome = "allowlist";
  pass.counted_as_test_result();
  EXPECT_EQ(pass.counter, kTestResults);
  EXPECT_EQ(pass.labels, "test=\"dnsbl\",outcome=\"allowlist\"");
}

TEST(ChecksFinding, ConnectDecision) {
  auto deny = access_finding(AccessDecision::kReject, ip("192.0.2.7"), kWho);
  EXPECT_EQ(deny.word, "DENYLISTED");
  EXPECT_EQ(deny.detail, "DENYLISTED [192.0.2.7]:4711");
  EXPECT_EQ(deny.then, Then::kReplyAndClose);
  EXPECT_EQ(deny.test, "denylisted");  // the session's outcome
  EXPECT_EQ(deny.reply, access_reject_reply(ip("192.0.2.7")));
  EXPECT_TRUE(deny.strike.empty());

  auto allow = access_finding(AccessDecision::kPermit, ip("192.0.2.7"), kWho);
  EXPECT_EQ(allow.detail, "ALLOWLISTED [192.0.2.7]:4711");
  EXPECT_EQ(allow.then, Then::kContinue);
  EXPECT_TRUE(access_finding(AccessDecision::kDunno, ip("192.0.2.7"), kWho).word.empty());

  auto busy = server_busy_finding(kWho, true);
  EXPECT_TRUE(busy.warning);
  EXPECT_EQ(busy.detail,
            "NOQUEUE: reject: CONNECT from [192.0.2.7]:4711: all server ports busy (open files "
            "limit)");
  EXPECT_EQ(busy.labels, "limit=\"open_files\"");
  EXPECT_EQ(busy.reply, "421 4.3.2 All server ports are busy");
  EXPECT_EQ(busy.test, "busy");

  auto rate = client_limit_finding(ip("192.0.2.7"), kWho, ClientLimits::Result::kTooFast, 50, 10);
  EXPECT_EQ(rate.word, "LIMIT");
  EXPECT_EQ(rate.detail,
            "NOQUEUE: reject: CONNECT from [192.0.2.7]:4711: too many connections per minute "
            "(limits.client_connection_rate = 10)");
  EXPECT_EQ(rate.counter, "mxscreen_limit_hits_total");
  EXPECT_EQ(rate.labels, "limit=\"client_connection_rate\"");
  EXPECT_EQ(rate.reply, client_limit_reply(ip("192.0.2.7")));
  EXPECT_EQ(rate.test, "client_limit");
  EXPECT_EQ(client_limit_finding(ip("192.0.2.7"), kWho, ClientLimits::Result::kOk, 50, 10).then,
            Then::kContinue);
}

TEST(ChecksFinding, BannedClientWithOrWithoutAReply) {
  BanRecord record{1000, "trap"};
  auto f = banned_finding(ip("192.0.2.7"), kWho, record, 400, true);
  EXPECT_EQ(f.detail, "BANNED [192.0.2.7]:4711: connection refused (trap, 600s left)");
  EXPECT_EQ(f.counter, "mxscreen_banned_connections_total");
  EXPECT_EQ(f.then, Then::kReplyAndClose);
  EXPECT_EQ(f.reply, ban_reply(ip("192.0.2.7")));
  EXPECT_EQ(f.test, "banned");
  auto silent = banned_finding(ip("192.0.2.7"), kWho, std::nullopt, 400, false);
  EXPECT_EQ(silent.detail, "BANNED [192.0.2.7]:4711: connection refused (, 0s left)");
  EXPECT_EQ(silent.then, Then::kClose);
  EXPECT_TRUE(silent.reply.empty());
}

TEST(ChecksFinding, PregreetHitAndVerdict) {
  auto t0 = PregreetTest::Clock::time_point{};
  PregreetTest drop(Action::kDrop, t0);
  drop.on_client_bytes(t0 + 1250ms, "EHLO x\r\n");
  auto hit = pregreet_hit(drop, kWho);
  EXPECT_EQ(hit.detail, "PREGREET 8 after 1.25 from [192.0.2.7]:4711: EHLO x\\x0d\\x0a");
  EXPECT_EQ(hit.then, Then::kReplyAndClose);
  EXPECT_EQ(hit.reply, "521 5.5.1 Protocol error");
  EXPECT_EQ(hit.labels, "verdict=\"drop\"");
  EXPECT_EQ(hit.strike, "pregreet");

  PregreetTest enforce(Action::kEnforce, t0);
  enforce.on_client_bytes(t0 + 10ms, "x");
  EXPECT_EQ(pregreet_hit(enforce, kWho).then, Then::kContinue);
  auto verdict = pregreet_verdict(enforce);
  EXPECT_EQ(verdict.labels, "verdict=\"enforce\"");
  EXPECT_EQ(verdict.then, Then::kEnforce);
  EXPECT_EQ(pregreet_verdict(PregreetTest(Action::kEnforce, t0)).labels, "verdict=\"pass\"");
}

TEST(ChecksFinding, DnsblScore) {
  DnsblHit hit;
  hit.zone = "zen.test";
  hit.site = "zen.test*3";
  hit.weight = 3;
  std::vector<DnsblHit> hits{hit};
  auto drop = dnsbl_findings(ip("192.0.2.7"), kWho, 3, hits, "", 3, -1, Action::kDrop, {});
  ASSERT_EQ(drop.size(), 2u);
  EXPECT_EQ(drop[0].detail, "DNSBL rank 3 for [192.0.2.7]:4711: zen.test*3(3)");
  EXPECT_EQ(drop[1].labels, "test=\"dnsbl\",outcome=\"drop\"");
  EXPECT_EQ(drop[1].then, Then::kReplyAndClose);
  EXPECT_EQ(drop[1].reply.substr(0, 10), "521 5.7.1 ");
  EXPECT_EQ(drop[1].strike, "dnsbl");
  auto enforce = dnsbl_findings(ip("192.0.2.7"), kWho, 3, hits, "", 3, -1, Action::kEnforce, {});
  EXPECT_EQ(enforce.back().then, Then::kEnforce);
  EXPECT_EQ(enforce.back().reply.substr(0, 10), "550 5.7.1 ");
  auto ignore = dnsbl_findings(ip("192.0.2.7"), kWho, 3, hits, "", 3, -1, Action::kIgnore, {});
  EXPECT_EQ(ignore.back().then, Then::kContinue);
  EXPECT_EQ(ignore.back().labels, "test=\"dnsbl\",outcome=\"ignore\"");
  auto dnswl = dnsbl_findings(ip("192.0.2.7"), kWho, -5, {}, "", 3, -1, Action::kDrop, {});
  EXPECT_EQ(dnswl.back().then, Then::kAllowlist);
  auto clean = dnsbl_findings(ip("192.0.2.7"), kWho, 0, {}, "", 3, -1, Action::kDrop, {});
  ASSERT_EQ(clean.size(), 1u);  // no DNSBL line for rank 0
  EXPECT_TRUE(clean[0].counter.empty());
}

TEST(ChecksFinding, NamesAtRcpt) {
  DomainFacts facts;
  facts.helo = NameFact::kNone;
  facts.sender_listed = RhsblListing{"dbl.test"};
  DomainNames names{"192.0.2.7", "", "nowhere.example", "a@spam.example"};
  auto found = domain_findings(facts, true, names, {}, kWho);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].detail, "RHSBL sender domain of [192.0.2.7]:4711 listed by dbl.test");
  EXPECT_EQ(found[1].then, Then::kRejectRcpt);
  EXPECT_EQ(found[1].test, "helo_unknown");
  EXPECT_EQ(found[1].labels, "test=\"domain\",outcome=\"helo_unknown\"");
  // helo.reject_unknown off: the HELO name was only looked up (greylist.only_if).
  auto gate_only = domain_findings(facts, false, names, {}, kWho);
  EXPECT_EQ(gate_only.back().test, "sender_rhsbl");
  DomainFacts clean;
  auto pass = domain_findings(clean, true, names, {}, kWho);
  ASSERT_EQ(pass.size(), 1u);
  EXPECT_EQ(pass[0].then, Then::kContinue);
  EXPECT_EQ(pass[0].labels, "test=\"domain\",outcome=\"pass\"");
}

TEST(ChecksFinding, TrapInTheDialogueAndOnThePolicyService) {
  auto f = trap_finding(ip("192.0.2.7"), kWho, "a@example.org", "trap@example.net", false);
  EXPECT_EQ(f.detail,
            "TRAP [192.0.2.7]:4711 from=<a@example.org> to=<trap@example.net>: spam trap "
            "recipient; banning the client");
  EXPECT_TRUE(f.warning);
  EXPECT_EQ(f.labels, "side=\"dialogue\"");
  EXPECT_EQ(f.then, Then::kBanAndClose);
  EXPECT_EQ(f.ban, "spam trap <trap@example.net>");
  EXPECT_EQ(f.reply, trap_reply(ip("192.0.2.7")));
  auto p = trap_finding(ip("192.0.2.7"), "[192.0.2.7]:0 from=<> to=<t@x>", {}, "t@x", true);
  EXPECT_EQ(
      p.detail,
      "TRAP [192.0.2.7]:0 from=<> to=<t@x>: spam trap recipient; banning the client (policy)");
  EXPECT_EQ(p.labels, "side=\"policy\"");
}

TEST(ChecksFinding, GreylistAnswers) {
  GreylistAnswer defer;
  defer.verdict = GreylistAnswer::Verdict::kDefer;
  defer.outcome = "new";
  defer.key = "ptr";
  defer.key_text = " key=ptr:example.net";
  defer.wait = 300s;
  auto f = greylist_finding(defer, kWho, "a@example.org", "b@example.net", "Greylisted");
  EXPECT_EQ(f.detail,
            "GREYLIST new [192.0.2.7]:4711 from=<a@example.org> to=<b@example.net> "
            "key=ptr:example.net retry in 300s");
  EXPECT_EQ(f.labels, "outcome=\"new\",key=\"ptr\"");
  EXPECT_EQ(f.then, Then::kDeferRcpt);
  EXPECT_EQ(f.reply, greylist_reply("b@example.net", "Greylisted"));

  GreylistAnswer passed;
  passed.outcome = "allowlisted";
  passed.key = "none";
  passed.detail = " by client_allowlist_file: x";
  auto p = greylist_finding(passed, kWho, "", "b@example.net", "Greylisted");
  EXPECT_EQ(p.detail,
            "GREYLIST allowlisted [192.0.2.7]:4711 from=<> to=<b@example.net> by "
            "client_allowlist_file: x");
  EXPECT_EQ(p.then, Then::kContinue);

  GreylistAnswer down;
  down.verdict = GreylistAnswer::Verdict::kStoreUnavailable;
  auto d = greylist_finding(down, kWho, "", "b@example.net", "Greylisted");
  EXPECT_TRUE(d.warning);
  EXPECT_EQ(d.detail,
            "GREYLIST skipped for [192.0.2.7]:4711: state store unavailable; failing open");
  EXPECT_EQ(d.labels, "outcome=\"store_unavailable\",key=\"net\"");
  EXPECT_TRUE(d.fields.empty());
}

TEST(ChecksFinding, GreylistOnThePolicyService) {
  GreylistAnswer defer;
  defer.verdict = GreylistAnswer::Verdict::kDefer;
  defer.outcome = "new";
  defer.wait = 60s;
  const char* who = "[192.0.2.7]:4711 from=<a@x> to=<b@y>";
  auto f = greylist_policy_finding(defer, who, "Greylisted", true, "mx.test");
  EXPECT_EQ(f.detail, "GREYLIST new [192.0.2.7]:4711 from=<a@x> to=<b@y> retry in 60s (policy)");
  EXPECT_EQ(f.reply, "DEFER_IF_PERMIT 4.2.0 Greylisted");
  EXPECT_TRUE(f.counter.empty());
  GreylistAnswer passed;
  passed.outcome = "passed";
  passed.delayed = 310s;
  auto p = greylist_policy_finding(passed, who, "Greylisted", true, "mx.test");
  EXPECT_EQ(p.reply, "PREPEND X-Greylist: delayed 310 seconds by mxscreen at mx.test");
  EXPECT_EQ(greylist_policy_finding(passed, who, "Greylisted", false, "mx.test").reply, "DUNNO");
  GreylistAnswer down;
  down.verdict = GreylistAnswer::Verdict::kStoreUnavailable;
  auto d = greylist_policy_finding(down, who, "Greylisted", true, "mx.test");
  EXPECT_EQ(d.detail,
            "GREYLIST skipped for [192.0.2.7]:4711 from=<a@x> to=<b@y> (policy): state store "
            "unavailable; failing open");
  EXPECT_FALSE(d.client_field);
  EXPECT_EQ(d.reply, "DUNNO");
}

TEST(ChecksFinding, DialogueFindingsAreTheDeepTestsLinesAndCloses) {
  auto p = std::make_shared<DialoguePolicy>();
  p->hostname = "mx.test";
  p->errors = {0ms, 10, 1, 100};  // the first error is the last
  DialogueClient c;
  c.address = *protocol::IpAddress::parse("192.0.2.7");
  c.port = 4711;
  Dialogue d(p, c);
  protocol::Line auth;
  auth.text = "AUTH LOGIN";
  auto step = d.on_line(auth);
  ASSERT_EQ(step.findings.size(), 2u);
  // The AUTH line and its strike come before the hard limit that closes the session.
  EXPECT_EQ(step.findings[0].word, "AUTH");
  EXPECT_EQ(step.findings[0].strike, "AUTH on an MX port");
  EXPECT_EQ(step.findings[0].fields[0].second, "auth");
  EXPECT_EQ(step.findings[1].word, "HARD-LIMIT");
  EXPECT_EQ(step.findings[1].test, "errors");
  EXPECT_EQ(step.findings[1].labels, "test=\"errors\",outcome=\"drop\"");
  EXPECT_EQ(step.findings[1].strike, "errors");
  EXPECT_TRUE(step.closes());
  EXPECT_EQ(step.sent(), "421 4.7.0 mx.test Error: too many errors\r\n");

  Dialogue polite(std::make_shared<const DialoguePolicy>(), DialogueClient{});
  protocol::Line quit;
  quit.text = "QUIT";
  auto bye = polite.on_line(quit);
  ASSERT_EQ(bye.findings.size(), 1u);
  EXPECT_EQ(bye.findings[0].test, "quit");  // the session's outcome
  EXPECT_TRUE(bye.findings[0].word.empty());
  EXPECT_TRUE(bye.findings[0].counter.empty());
  EXPECT_TRUE(bye.findings[0].strike.empty());
}

}  // namespace
}  // namespace mxscreen::checks
