// tests/proxy/explain_test.cc: `ctl explain`'s request parser and its conclusion from given
// facts (no socket, no store, no DNS: the facts are handed in as Explainer would gather them).
#include "proxy/explain.h"

#include <gtest/gtest.h>

#include "checks/ban.h"
#include "checks/greylist.h"
#include "checks/pass_cache.h"
#include "checks/spf_policy.h"

namespace mxscreen::proxy {
namespace {

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

std::shared_ptr<const Runtime> runtime(Config config) {
  std::vector<std::string> errors;
  auto rt = build_runtime(std::move(config), &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return rt;
}

Config base_config() {
  Config c;
  c.server.hostname = "mx.example.org";
  c.access.allow = {};
  c.dnsbl.sites = {"zen.test=127.0.0.[2..11]*3", "wl.test*-5"};
  c.greylist.enabled = true;
  c.cache.enabled = false;
  return c;
}

ExplainFacts facts(const char* client) {
  ExplainFacts f;
  f.request = parse_explain_request(
      {client, "--helo", "mail.example.org", "--from", "a@example.org", "--to", "u@example.net"});
  f.now = 1'700'000'000;
  f.resolver = true;
  f.dns = ClientDnsSnapshot{};
  f.dns->dnsbl_sites = f.dns->dnsbl_answered = 2;
  f.dns->ptr = PtrState::kNone;
  f.dns->fcrdns = FcrdnsState::kNoPtr;
  GreylistPeek peek;
  peek.answer.key_text = " key=net:192.0.2.0/24";
  peek.answer.outcome = "passed";
  f.greylist = peek;
  return f;
}

const ExplainLine* find(const ExplainReport& r, const std::string& test) {
  for (const auto& l : r.lines) {
    if (l.test == test) return &l;
  }
  return nullptr;
}

TEST(ExplainRequest, Options) {
  auto r =
      parse_explain_request({"192.0.2.7", "--from", "<>", "--to", "<u@example.net>", "--json"});
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.client.to_string(), "192.0.2.7");
  EXPECT_TRUE(r.sender_given);
  EXPECT_EQ(r.sender, "");
  EXPECT_EQ(r.recipient, "u@example.net");
  EXPECT_FALSE(r.helo_given);
  EXPECT_TRUE(r.json);
}

TEST(ExplainRequest, BadRequests) {
  EXPECT_NE(parse_explain_request({}).error.find("ERR explain needs an address"),
            std::string::npos);
  EXPECT_NE(parse_explain_request({"300.1.1.1"}).error.find("ERR invalid address \"300.1.1.1\""),
            std::string::npos);
  EXPECT_NE(parse_explain_request({"192.0.2.7", "--helo"}).error.find("--helo needs a value"),
            std::string::npos);
  EXPECT_NE(parse_explain_request({"192.0.2.7", "--x\x01"}).error.find("\"--x\\x01\""),
            std::string::npos);
  EXPECT_NE(parse_explain_request({"192.0.2.7", "--to", std::string(300, 'a')})
                .error.find("invalid --to value"),
            std::string::npos);
}

TEST(Explain, PassedClientIsHandedOffAtRcpt) {
  auto rt = runtime(base_config());
  auto r = conclude(*rt, facts("192.0.2.7"));
  EXPECT_EQ(r.answer.phase, "rcpt");
  EXPECT_EQ(r.answer.action, "handoff");
  EXPECT_EQ(find(r, "dnsbl")->result, "pass");
  EXPECT_EQ(find(r, "greylist")->result, "passed");
  EXPECT_EQ(find(r, "pregreet")->result, "not_evaluated");
  EXPECT_EQ(find(r, "pregreet")->detail, "needs a live session");
  EXPECT_EQ(find(r, "pipelining")->result, "not_evaluated");
}

TEST(Explain, GreylistedClientGetsTheSessionsReply) {
  auto rt = runtime(base_config());
  auto f = facts("192.0.2.7");
  f.greylist->answer.outcome = "new";
  f.greylist->answer.verdict = GreylistAnswer::Verdict::kDefer;
  f.greylist->answer.wait = std::chrono::seconds(300);
  auto r = conclude(*rt, f);
  EXPECT_EQ(r.answer.action, "reply");
  EXPECT_EQ(r.answer.reply,
            checks::greylist_reply("u@example.net", rt->config->greylist.reply_text));
  EXPECT_NE(find(r, "greylist")->detail.find("a retry passes in 300s"), std::string::npos);
}

TEST(Explain, ListedClientEnforcedAtRcptOrDroppedAtGreetEnd) {
  auto f = facts("192.0.2.7");
  f.dns->dnsbl_rank = 3;
  f.dns->dnsbl_hits = {{"zen.test", "zen.test=127.0.0.[2..11]*3", 3, {ip("127.0.0.2")}}};
  auto r = conclude(*runtime(base_config()), f);
  EXPECT_EQ(find(r, "dnsbl")->result, "listed");
  EXPECT_EQ(r.answer.phase, "rcpt");
  EXPECT_EQ(r.answer.reply,
            "550 5.7.1 Service unavailable; client [192.0.2.7] blocked using a DNS blocklist");
  auto drop = base_config();
  drop.dnsbl.action = checks::Action::kDrop;
  r = conclude(*runtime(drop), f);
  EXPECT_EQ(r.answer.phase, "greet_end");
  EXPECT_EQ(r.answer.reply.substr(0, 10), "521 5.7.1 ");
}

TEST(Explain, DnswlClientIsHandedOffAfterTheGreet) {
  auto f = facts("192.0.2.7");
  f.dns->dnsbl_rank = -5;
  auto r = conclude(*runtime(base_config()), f);
  EXPECT_EQ(find(r, "dnsbl")->result, "allowlisted");
  EXPECT_EQ(r.answer.phase, "greet_end");
  EXPECT_EQ(r.answer.action, "handoff");
}

TEST(Explain, ConnectDecisions) {
  auto f = facts("192.0.2.7");
  f.ban_status = StoreStatus::kOk;
  f.ban_record = checks::BanRecord{f.now + 60, "admin"}.to_string();
  auto replying = base_config();
  replying.ban.reply = true;
  auto r = conclude(*runtime(replying), f);
  EXPECT_EQ(find(r, "ban")->result, "banned");
  EXPECT_EQ(r.answer.phase, "connect");
  EXPECT_EQ(r.answer.reply, "554 5.7.1 Service unavailable; client [192.0.2.7] is banned");
  EXPECT_EQ(conclude(*runtime(base_config()), f).answer.action, "close");  // ban.reply = false
  // The access list's permit is exempt from bans: straight to the backend.
  auto allow = base_config();
  allow.access.allow = {*protocol::Cidr::parse("192.0.2.0/24")};
  r = conclude(*runtime(allow), f);
  EXPECT_EQ(find(r, "ban")->result, "exempt");
  EXPECT_EQ(r.answer.action, "handoff");
  EXPECT_EQ(r.answer.phase, "connect");
  auto deny = base_config();
  deny.access.deny = {*protocol::Cidr::parse("192.0.2.0/24")};
  EXPECT_EQ(conclude(*runtime(deny), facts("192.0.2.7")).answer.reply,
            "554 5.7.1 Service unavailable; client [192.0.2.7] blocked using access list");
  auto limited = facts("192.0.2.7");
  limited.limits = checks::ClientLimits::Result::kTooManyConnections;
  EXPECT_EQ(conclude(*runtime(base_config()), limited).answer.reply,
            "421 4.7.0 Error: too many connections from [192.0.2.7]");
}

TEST(Explain, PassOldFromTheCache) {
  auto c = base_config();
  c.cache.enabled = true;
  auto rt = runtime(c);
  auto f = facts("192.0.2.7");
  checks::PassRecord record;
  record.expires.fill(f.now + 3600);
  f.pass_status = StoreStatus::kOk;
  f.pass_record = checks::format_pass_record(record);
  auto r = conclude(*rt, f);
  EXPECT_EQ(find(r, "cache")->result, "pass_old");
  EXPECT_EQ(r.answer.phase, "connect");
  EXPECT_EQ(r.answer.action, "handoff");
}

TEST(Explain, HeloAndEnvelopeRejectsAreTheDialoguesReplies) {
  auto f = facts("192.0.2.7");
  f.request = parse_explain_request({"192.0.2.7", "--helo", "localhost", "--to", "u@example.net"});
  auto r = conclude(*runtime(base_config()), f);
  EXPECT_EQ(find(r, "helo")->result, "reject");
  EXPECT_EQ(r.answer.phase, "rcpt");
  EXPECT_EQ(r.answer.reply.substr(0, 4), "504 ");
  EXPECT_NE(r.answer.reply.find("Helo command rejected"), std::string::npos) << r.answer.reply;
}

TEST(Explain, SpfFailIsRefusedAtRcptBeforeGreylisting) {
  auto c = base_config();
  c.sender.spf = checks::SpfMode::kRejectFail;
  auto f = facts("192.0.2.7");
  checks::SpfFinding spf;
  spf.result = checks::SpfResult::kFail;
  spf.identity = "mailfrom";
  spf.domain = "example.org";
  spf.mechanism = "-all";
  f.spf = spf;
  auto r = conclude(*runtime(c), f);
  EXPECT_EQ(find(r, "spf")->result, "fail");
  EXPECT_EQ(r.answer.phase, "rcpt");
  EXPECT_EQ(r.answer.reply, checks::spf_reject_reply(spf, "a@example.org"));
  EXPECT_EQ(r.answer.reply.substr(0, 11), "550 5.7.23 ");
  // Logged only: the mail goes on to greylisting (here: passed) and the backend.
  c.sender.spf = checks::SpfMode::kLog;
  EXPECT_EQ(conclude(*runtime(c), f).answer.action, "handoff");
  // No finding in time: said, and the session would still be waiting for it.
  f.spf.reset();
  EXPECT_EQ(find(conclude(*runtime(c), f), "spf")->result, "pending");
}

TEST(Explain, TextAndJson) {
  auto r = conclude(*runtime(base_config()), facts("192.0.2.7"));
  auto text = format_text(r);
  EXPECT_EQ(text.rfind("client 192.0.2.7 helo=<mail.example.org> from=<a@example.org> "
                       "to=<u@example.net>\n",
                       0),
            0u);
  EXPECT_NE(text.find("\nanswer rcpt handoff\n"), std::string::npos) << text;
  auto json = format_json(r);
  EXPECT_EQ(json.rfind("{\"client\":\"192.0.2.7\",\"helo\":\"mail.example.org\"", 0), 0u);
  EXPECT_NE(json.find("\"answer\":{\"phase\":\"rcpt\",\"action\":\"handoff\",\"reply\":\"\""),
            std::string::npos);
  EXPECT_EQ(json.back(), '\n');
}

}  // namespace
}  // namespace mxscreen::proxy
