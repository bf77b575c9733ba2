// proxy/explain.cc: see explain.h.
#include "proxy/explain.h"

#include <algorithm>

#include "checks/access.h"
#include "checks/ban.h"
#include "checks/dialogue.h"
#include "checks/dnsbl.h"
#include "checks/envelope.h"
#include "checks/greylist.h"
#include "checks/helo.h"
#include "checks/pass_cache.h"
#include "checks/spf_policy.h"
#include "checks/store_keys.h"
#include "protocol/escape.h"
#include "protocol/smtp_command.h"
#include "proxy/control.h"
#include "proxy/screening.h"
#include "proxy/server.h"

namespace mxscreen::proxy {
namespace {

bool value_ok(const std::string& v) {
  return v.size() <= kExplainValueLimit &&
         std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string seconds(int64_t s) { return std::to_string(s) + "s"; }

std::string without_crlf(std::string reply) {
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  return reply;
}

int reply_code(const std::string& reply) {
  if (reply.size() < 3) return 0;
  return std::atoi(reply.substr(0, 3).c_str());
}

const char* access_word(checks::AccessDecision d) {
  switch (d) {
    case checks::AccessDecision::kPermit:
      return "permit";
    case checks::AccessDecision::kReject:
      return "reject";
    case checks::AccessDecision::kDunno:
      break;
  }
  return "dunno";
}

const char* name_fact_word(checks::NameFact f) {
  switch (f) {
    case checks::NameFact::kExists:
      return "exists";
    case checks::NameFact::kNone:
      return "unknown";
    case checks::NameFact::kTempFail:
      break;
  }
  return "tempfail";
}

// One line per enabled test of the plan that only a live session can run.
bool needs_live_session(std::string_view test) {
  return test == "pregreet" || test == "pipelining" || test == "non_smtp" || test == "bare_newline";
}

std::string phase_of(std::string_view test) {
  for (const auto& row : checks::Plan::tests()) {
    if (row.name == test) return std::string(checks::to_string(row.phase));
  }
  return "rcpt";
}

// The conclusion's state as it walks the session's order.
class Walk {
 public:
  Walk(const Runtime& runtime, const ExplainFacts& facts)
      : rt_(runtime), c_(*runtime.config), f_(facts), client_(facts.request.client) {}

  ExplainReport run();

 private:
  void line(std::string test, std::string result, std::string detail, std::string phase = "") {
    if (phase.empty()) phase = phase_of(test);
    report_.lines.push_back(
        {std::move(test), std::move(phase), std::move(result), std::move(detail)});
  }
  // The first answer found is the client's; later tests are still reported.
  void answer(std::string phase, std::string action, std::string reply, std::string detail) {
    if (answered_) return;
    answered_ = true;
    report_.answer = {std::move(phase), std::move(action), std::move(reply), std::move(detail)};
  }
  void connect_tests();
  void cache_test();
  void dns_tests();
  void live_tests();
  void dialogue_tests();
  void spf_test(bool reached);
  void domain_tests(bool reached);
  void greylist_test(bool reached);

  const Runtime& rt_;
  const Config& c_;
  const ExplainFacts& f_;
  protocol::IpAddress client_;
  ExplainReport report_;
  bool answered_ = false;
  bool permitted_ = false;
  bool dnsbl_listed_ = false;  // the cache's DNSBL re-check lists the client
  std::string dnsbl_enforce_reply_;
  bool dnswl_ = false;
};

void Walk::connect_tests() {
  auto access = rt_.access.decide(client_);
  permitted_ = access == checks::AccessDecision::kPermit;
  line("access", access_word(access),
       access == checks::AccessDecision::kDunno ? "no access rule matches" : "access list rule",
       "connect");
  if (access == checks::AccessDecision::kReject) {
    answer("connect", "reply", checks::access_reject_reply(client_), "DENYLISTED");
  } else if (permitted_) {
    answer("connect", "handoff", "",
           "ALLOWLISTED: handed off at connect; the client meets the backend's own banner");
  }

  auto record = checks::BanRecord::parse(f_.ban_record);
  bool banned = f_.ban_status == StoreStatus::kOk && checks::is_banned(f_.ban_record, f_.now);
  std::string ban_detail =
      banned && record
          ? "until " + utc_time(record->until) + " (" + seconds(record->until - f_.now) +
                " left): " + protocol::printable(record->reason, 200)
      : f_.ban_status == StoreStatus::kUnavailable ? "state store unavailable: not banned"
                                                   : "no ban for " + client_.to_string();
  line("ban", banned ? (permitted_ ? "exempt" : "banned") : "pass", ban_detail, "connect");
  if (banned && !permitted_) {
    if (c_.ban.reply) {
      answer("connect", "reply", checks::ban_reply(client_), "BANNED");
    } else {
      answer("connect", "close", "", "BANNED: closed without a word (ban.reply = false)");
    }
  }

  const auto& limits = c_.limits;
  std::string limit_detail =
      std::to_string(f_.concurrent) + " sessions now (limits.client_connection_count = " +
      std::to_string(limits.client_connection_count) +
      ", limits.client_connection_rate = " + std::to_string(limits.client_connection_rate) + ")";
  bool over = f_.limits != checks::ClientLimits::Result::kOk;
  line("limits",
       !over                                                            ? "pass"
       : f_.limits == checks::ClientLimits::Result::kTooManyConnections ? "too_many_connections"
                                                                        : "too_fast",
       limit_detail, "connect");
  if (over && !permitted_) {
    answer("connect", "reply", checks::client_limit_reply(client_), "LIMIT");
  }
  line("nolisting", f_.nolisting_pass ? "pass" : "none",
       f_.nolisting_pass ? "came to the fake MX first, within fake_mx.pair_window"
                         : "no recent fake MX visit",
       "connect");
}

void Walk::cache_test() {
  if (!c_.cache.enabled) {
    line("cache", "off", "cache.enabled = false", "connect");
    return;
  }
  auto record =
      f_.pass_status == StoreStatus::kOk ? checks::parse_pass_record(f_.pass_record) : std::nullopt;
  if (!record) {
    line("cache", f_.pass_status == StoreStatus::kUnavailable ? "unavailable" : "miss",
         f_.pass_status == StoreStatus::kOk ? "unreadable record: screened again"
                                            : "no pass record for " + client_.to_string(),
         "connect");
    return;
  }
  auto check = checks::check_pass_record(*record, cached_tests_enabled(rt_), f_.now);
  std::string expiries;
  for (std::size_t i = 0; i < checks::kCachedTests; ++i) {
    if (record->expires[i] == 0) continue;
    expiries += (expiries.empty() ? "" : ", ") +
                std::string(checks::to_string(static_cast<checks::CachedTest>(i))) + " until " +
                utc_time(record->expires[i]);
  }
  std::string expired;
  for (auto t : check.expired) {
    expired += (expired.empty() ? "" : ",") + std::string(checks::to_string(t));
  }
  switch (check.verdict) {
    case checks::CacheVerdict::kPassOld:
      line("cache", "pass_old", expiries, "connect");
      answer("connect", "handoff", "",
             "PASS OLD: handed off at connect; the client meets the backend's own banner");
      return;
    case checks::CacheVerdict::kRecheckDnsbl:
      if (f_.dns) {
        dnsbl_listed_ = f_.dns->dnsbl_rank >= c_.dnsbl.threshold;
        line("cache", dnsbl_listed_ ? "dnsbl_listed" : "pass_old",
             "DNSBL verdict expired, looked up again: rank " + std::to_string(f_.dns->dnsbl_rank) +
                 (dnsbl_listed_ ? ": screened as a new client" : ": PASS OLD") + "; " + expiries,
             "connect");
        if (!dnsbl_listed_) {
          answer("connect", "handoff", "",
                 "PASS OLD (DNSBL re-checked): handed off at connect; the client meets the "
                 "backend's own banner");
        }
        return;
      }
      break;
    case checks::CacheVerdict::kScreen:
      break;
  }
  line("cache", "expired", "expired: " + expired + "; " + expiries, "connect");
}

void Walk::dns_tests() {
  const auto& dnsbl = c_.dnsbl;
  if (!f_.dns) {
    line("dns", "off", f_.resolver ? "no lookups" : "no resolver: DNS tests skipped", "connect");
    return;
  }
  const auto& snap = *f_.dns;
  if (rt_.plan.on("dnsbl")) {
    std::string hits;
    for (const auto& hit : snap.dnsbl_hits) {
      std::string answers;
      for (const auto& a : hit.answers) {
        if (!answers.empty()) answers += ',';  // by append: GCC 12's -Wrestrict misfires on
        answers += a.to_string();              // "literal" + std::string&& in Release
      }
      hits +=
          (hits.empty() ? "" : " ") + hit.site + "(" + std::to_string(hit.weight) + ")=" + answers;
    }
    auto decision = checks::dnsbl_decision(snap.dnsbl_rank, dnsbl.threshold,
                                           dnsbl.allowlist_threshold, dnsbl.action);
    std::string detail = "rank " + std::to_string(snap.dnsbl_rank) + " (threshold " +
                         std::to_string(dnsbl.threshold) + ", allowlist_threshold " +
                         std::to_string(dnsbl.allowlist_threshold) + ", action " +
                         std::string(checks::to_string(dnsbl.action)) + ")";
    if (!hits.empty()) detail += "; listed by " + hits;
    detail += "; " + std::to_string(snap.dnsbl_answered) + " of " +
              std::to_string(snap.dnsbl_sites) + " sites answered";
    if (snap.dnsbl_tempfail) detail += ", " + std::to_string(snap.dnsbl_tempfail) + " failed";
    for (const auto& z : snap.dnsbl_error_zones) detail += "; zone error from " + z;
    const char* result = decision == checks::DnsblDecision::kAllowlisted ? "allowlisted"
                         : decision == checks::DnsblDecision::kListed    ? "listed"
                         : snap.dnsbl_rank != 0                          ? "below_threshold"
                                                                         : "pass";
    line("dnsbl", result, detail);
    dnswl_ = decision == checks::DnsblDecision::kAllowlisted && !rt_.dnsbl_sites->empty();
    if (decision == checks::DnsblDecision::kListed) {
      std::string text =
          checks::dnsbl_reject_text(client_, snap.dnsbl_hits, snap.reply_text, dnsbl.reply_map);
      auto replies = checks::dnsbl_replies(dnsbl.action, text);
      if (!replies.drop.empty()) {
        answer("greet_end", "reply", replies.drop, "DNSBL drop: 521 and close");
      } else {
        dnsbl_enforce_reply_ = std::move(replies.enforce);
      }
    }
  }
  std::string ptr = std::string(to_string(snap.ptr)) +
                    (snap.ptr_name.empty() ? "" : " " + protocol::printable(snap.ptr_name, 255));
  line("rdns", std::string(to_string(snap.fcrdns)),
       "PTR " + ptr + "; FCrDNS " + std::string(to_string(snap.fcrdns)), "connect");
}

void Walk::live_tests() {
  for (const auto* row : rt_.plan.enabled()) {
    if (!needs_live_session(row->name)) continue;
    line(std::string(row->name), "not_evaluated", "needs a live session");
  }
}

void Walk::dialogue_tests() {
  const auto& req = f_.request;
  // The greet end (session.cc greet_done): DNSWL and connection-tests-only hand off here.
  if (dnswl_) {
    answer("greet_end", "handoff", "",
           "DNSWL: handed off after the greet wait; the client meets the backend's banner");
  } else if (!rt_.plan.dialogue_needed() && dnsbl_enforce_reply_.empty()) {
    answer("greet_end", "handoff", "",
           "only connection tests are on: handed off after the greet wait");
  }
  DialogueFacts facts;
  facts.client = client_;
  facts.under_stress = f_.under_stress;
  facts.dnsbl_enforce_reply = dnsbl_enforce_reply_;
  facts.dns = f_.dns ? &*f_.dns : nullptr;
  auto policy = make_dialogue_policy(rt_, f_.backend_ehlo);
  auto client = make_dialogue_client(rt_, facts);
  // The per-test lines, from the same checks the dialogue runs.
  if (client.client_reject) {
    line(rt_.plan.on("fcrdns") ? "fcrdns" : "reverse", "reject",
         protocol::printable(*client.client_reject, 300));
  } else if (rt_.plan.on("reverse") || rt_.plan.on("fcrdns")) {
    line(rt_.plan.on("fcrdns") ? "fcrdns" : "reverse", "pass", "");
  }
  auto helo_reject = checks::helo_reject_reply(report_.helo, policy->helo, policy->helo_facts);
  if (std::any_of(rt_.plan.enabled().begin(), rt_.plan.enabled().end(),
                  [](const checks::TestRow* row) { return row->phase == checks::Phase::kHelo; })) {
    line("helo", helo_reject ? "reject" : "pass",
         helo_reject ? protocol::printable(*helo_reject, 300) : "", "helo");
  }
  checks::Dialogue dialogue(policy, client);
  auto say = [&](const std::string& text) {
    protocol::Line l;
    l.text = text;
    return dialogue.on_line(l);
  };
  auto ehlo = say("EHLO " + report_.helo);
  if (ehlo.then == checks::Step::Then::kHandoff) {
    answer("helo", "handoff", "", "only HELO tests are in the dialogue: handed off after EHLO");
  } else if (reply_code(ehlo.sent()) >= 400) {
    answer("helo", "reply", without_crlf(ehlo.sent()), "EHLO refused");
  }
  auto mail = say("MAIL FROM:<" + req.sender + ">");
  if (reply_code(mail.sent()) >= 400) answer("mail", "reply", without_crlf(mail.sent()), "MAIL");
  if (rt_.plan.on("sender_non_fqdn") && reply_code(mail.sent()) < 400) {
    auto r = checks::sender_reject_reply(dialogue.sender(), c_.sender.reject_non_fqdn);
    line("sender_non_fqdn", r ? "reject" : "pass", r ? protocol::printable(*r, 300) : "");
  }
  auto rcpt = say("RCPT TO:<" + report_.recipient + ">");
  bool reached = rcpt.then == checks::Step::Then::kHandoff;
  if (!reached) {
    std::string test;
    for (const auto& f : rcpt.findings) {
      if (f.word == "NOQUEUE") test = f.test;
    }
    answer("rcpt", "reply", without_crlf(rcpt.sent()),
           test.empty() ? "RCPT refused" : "refused by the " + test + " test");
  }
  if (rt_.plan.on("recipient_non_fqdn")) {
    std::string why;
    auto args = protocol::parse_rcpt_to("TO:<" + report_.recipient + ">", &why, true);
    auto r = args ? checks::recipient_reject_reply(args->path, c_.recipient.reject_non_fqdn)
                  : std::optional<std::string>(checks::address_syntax_reply(why));
    line("recipient_non_fqdn", r ? "reject" : "pass", r ? protocol::printable(*r, 300) : "");
  }
  spf_test(reached);
  domain_tests(reached);
  greylist_test(reached);
  answer("rcpt", "handoff", "",
         "every test passed: handed off at this RCPT; the backend's own reply to it (Postfix's "
         "recipient checks) goes to the client");
}

// session_spf.cc's rcpt_ready: a refused SPF finding answers the RCPT before the names' DNS.
void Walk::spf_test(bool reached) {
  if (c_.sender.spf == checks::SpfMode::kOff) return;
  if (!f_.spf) {
    line("spf", "pending", "no finding within sender.spf_timeout", "rcpt");
    return;
  }
  const auto& spf = *f_.spf;
  std::string detail = "domain " + protocol::printable(spf.domain, 255) + " (" + spf.identity +
                       ")" + (spf.mechanism.empty() ? "" : ", mechanism " + spf.mechanism) +
                       (spf.problem.empty() ? "" : ", " + protocol::printable(spf.problem, 200)) +
                       "; sender.spf = " + std::string(checks::to_string(c_.sender.spf));
  bool rejects = checks::spf_rejects(spf, c_.sender.spf);
  line("spf", std::string(checks::to_string(spf.result)), detail, "rcpt");
  if (reached && rejects) {
    answer("rcpt", "reply", checks::spf_reject_reply(spf, f_.request.sender),
           "refused by the spf test");
  }
}

void Walk::domain_tests(bool reached) {
  bool wanted = rt_.plan.needs(checks::kNeedDomainDns);
  if (!wanted) return;
  if (!f_.domains) {
    line("domain", f_.resolver ? "pending" : "skipped",
         f_.resolver ? "no answer within dns.timeout" : "no resolver", "rcpt");
    return;
  }
  const auto& d = *f_.domains;
  if (d.helo) line("helo_unknown", name_fact_word(*d.helo), "HELO name " + report_.helo);
  if (d.sender) line("sender_unknown", name_fact_word(*d.sender), "sender domain");
  for (auto [test, listing] :
       {std::pair{"reverse_rhsbl", &d.reverse_listed}, std::pair{"helo_rhsbl", &d.helo_listed},
        std::pair{"sender_rhsbl", &d.sender_listed}}) {
    if (!rt_.plan.on(test)) continue;
    line(test, *listing ? "listed" : "pass", *listing ? "listed by " + (*listing)->zone : "");
  }
  std::string reverse;
  if (f_.dns && f_.dns->ptr == PtrState::kFound) reverse = f_.dns->ptr_name;
  checks::DomainNames names{client_.to_string(), reverse, report_.helo, f_.request.sender};
  auto reject = checks::domain_reject_reply(d, names, c_.dnsbl.reply_map);
  if (reject && reached) {
    answer("rcpt", "reply", reject->reply, "refused by the " + reject->test + " test");
  }
}

void Walk::greylist_test(bool reached) {
  if (!c_.greylist.enabled) return;
  if (f_.nolisting_pass && c_.greylist.skip_on_nolisting_pass) {
    line("greylist", "nolisting", "skipped: nolisting pass (greylist.skip_on_nolisting_pass)");
    return;
  }
  if (!f_.greylist) {
    line("greylist", "pending", "not looked up");
    return;
  }
  const auto& peek = *f_.greylist;
  const auto& a = peek.answer;
  std::string detail = a.key_text.empty() ? "no triplet" : "key" + a.key_text.substr(4);
  for (const auto& r : peek.reads) {
    detail += "; " + protocol::printable(r.key, 500) + ": ";
    if (r.status == StoreStatus::kUnavailable) {
      detail += "store unavailable";
    } else if (r.status != StoreStatus::kOk) {
      detail += "no record";
    } else if (r.key.rfind(checks::store_keys::kAutoAllow, 0) == 0) {
      auto count = checks::ClientPassRecord::parse(r.value);
      detail += "client passes counted " + std::to_string(count ? count->count : 0) +
                " (greylist.auto_allowlist_clients = " +
                std::to_string(c_.greylist.auto_allowlist_clients) + ")";
    } else if (auto rec = checks::GreylistRecord::parse(r.value)) {
      detail += "first seen " + utc_time(rec->first_seen) + ", last seen " +
                utc_time(rec->last_seen) + (rec->passed ? ", passed" : "");
    } else {
      detail += "unreadable record";
    }
  }
  detail += protocol::printable(a.gate, 300);
  detail += protocol::printable(a.detail, 300);
  if (a.verdict == GreylistAnswer::Verdict::kDefer) {
    detail += "; a retry passes in " + seconds(a.wait.count());
  } else if (a.verdict == GreylistAnswer::Verdict::kStoreUnavailable) {
    detail += "; state store unavailable: fails open";
  }
  std::string word = a.outcome;
  std::replace(word.begin(), word.end(), ' ', '_');
  line("greylist", word, detail);
  if (reached && a.verdict == GreylistAnswer::Verdict::kDefer) {
    answer("rcpt", "reply", checks::greylist_reply(report_.recipient, c_.greylist.reply_text),
           "GREYLIST " + a.outcome);
  }
}

ExplainReport Walk::run() {
  const auto& req = f_.request;
  report_.client = client_.to_string();
  report_.helo = explain_helo(f_);
  report_.sender = req.sender;
  report_.recipient = req.recipient_given ? req.recipient : "postmaster@" + c_.server.hostname;
  connect_tests();
  cache_test();
  dns_tests();
  live_tests();
  if (f_.timed_out) {
    line("dns", "timeout",
         "some lookups had not answered within dns.timeout: counted as not "
         "listed, as at the end of a greet wait",
         "connect");
  }
  dialogue_tests();
  return std::move(report_);
}

}  // namespace

std::string explain_helo(const ExplainFacts& f) {
  if (f.request.helo_given) return f.request.helo;
  return f.dns && f.dns->fcrdns == FcrdnsState::kConfirmed
             ? f.dns->ptr_name
             : "[" + f.request.client.to_string() + "]";
}

ExplainRequest parse_explain_request(const std::vector<std::string>& args) {
  ExplainRequest r;
  const std::string usage =
      "expected: explain ADDRESS [--helo NAME] [--from ADDR] [--to ADDR] [--json]";
  if (args.empty()) {
    r.error = "ERR explain needs an address; " + usage;
    return r;
  }
  auto address = protocol::IpAddress::parse(args[0]);
  if (!address) {
    r.error = "ERR invalid address \"" + protocol::printable(args[0]) + "\"; " + usage;
    return r;
  }
  r.client = *address;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& opt = args[i];
    if (opt == "--json") {
      r.json = true;
      continue;
    }
    std::string* value = opt == "--helo"   ? &r.helo
                         : opt == "--from" ? &r.sender
                         : opt == "--to"   ? &r.recipient
                                           : nullptr;
    if (!value) {
      r.error = "ERR unknown option \"" + protocol::printable(opt) + "\"; " + usage;
      return r;
    }
    if (i + 1 >= args.size()) {
      r.error = "ERR " + opt + " needs a value; " + usage;
      return r;
    }
    *value = args[++i];
    if (opt == "--from" && *value == "<>") value->clear();
    // <a@b> is taken for a@b.
    if (value->size() >= 2 && value->front() == '<' && value->back() == '>') {
      *value = value->substr(1, value->size() - 2);
    }
    if (!value_ok(*value) || (value->empty() && opt != "--from")) {
      r.error = "ERR invalid " + opt + " value \"" + protocol::printable(args[i]) +
                "\" (printable ASCII, no spaces, at most " + std::to_string(kExplainValueLimit) +
                " bytes)";
      return r;
    }
    (opt == "--helo" ? r.helo_given : opt == "--from" ? r.sender_given : r.recipient_given) = true;
  }
  return r;
}

ExplainReport conclude(const Runtime& runtime, const ExplainFacts& facts) {
  return Walk(runtime, facts).run();
}

std::string format_text(const ExplainReport& r) {
  std::string out = "client " + r.client + " helo=<" + protocol::printable(r.helo, 255) +
                    "> from=<" + protocol::printable(r.sender, 255) + "> to=<" +
                    protocol::printable(r.recipient, 255) + ">\n";
  for (const auto& l : r.lines) {
    out += "test " + l.test + " " + l.phase + " " + l.result;
    if (!l.detail.empty()) out += ": " + l.detail;
    out += "\n";
  }
  out += "answer " + r.answer.phase + " " + r.answer.action;
  if (!r.answer.reply.empty()) out += ": " + protocol::printable(r.answer.reply, 600);
  out += "\n";
  if (!r.answer.detail.empty()) out += "why " + r.answer.detail + "\n";
  return out;
}

std::string format_json(const ExplainReport& r) {
  auto str = [](const std::string& s) {
    std::string quoted = "\"";  // by append: GCC 12's -Wrestrict misfires on "literal" + string&&
    quoted += protocol::json_escape(s);
    quoted += '"';
    return quoted;
  };
  std::string out = "{\"client\":" + str(r.client) + ",\"helo\":" + str(r.helo) +
                    ",\"from\":" + str(r.sender) + ",\"to\":" + str(r.recipient) + ",\"tests\":[";
  for (std::size_t i = 0; i < r.lines.size(); ++i) {
    const auto& l = r.lines[i];
    out += std::string(i ? "," : "") + "{\"test\":" + str(l.test) + ",\"phase\":" + str(l.phase) +
           ",\"result\":" + str(l.result) + ",\"detail\":" + str(l.detail) + "}";
  }
  out += "],\"answer\":{\"phase\":" + str(r.answer.phase) + ",\"action\":" + str(r.answer.action) +
         ",\"reply\":" + str(r.answer.reply) + ",\"detail\":" + str(r.answer.detail) + "}}\n";
  return out;
}

// --- DryRunStore ---

void DryRunStore::get(const std::string& key, GetCallback cb) {
  real_.get(key, [this, key, cb = std::move(cb)](StoreStatus status, std::string value) {
    reads.push_back({key, status, value});
    cb(status, std::move(value));
  });
}

void DryRunStore::put(const std::string&, const std::string&, std::chrono::seconds,
                      StatusCallback cb) {
  if (cb) cb(StoreStatus::kOk);
}

void DryRunStore::increment(const std::string&, int64_t by, std::chrono::seconds,
                            IncrementCallback cb) {
  if (cb) cb(StoreStatus::kOk, by);
}

void DryRunStore::put_if(const std::string&, const std::optional<std::string>&, const std::string&,
                         std::chrono::seconds, StatusCallback cb) {
  if (cb) cb(StoreStatus::kOk);
}

void DryRunStore::remove(const std::string&, StatusCallback cb) {
  if (cb) cb(StoreStatus::kOk);
}

void DryRunStore::scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                            const ScanFilter& keep, PageCallback cb) {
  real_.scan_page(prefix, cursor, max, keep, std::move(cb));
}

// --- Explainer: the facts, gathered on the loop ---

Explainer::Explainer(Server& server, ExplainRequest request)
    : server_(server), runtime_(server.runtime()) {
  facts_.request = std::move(request);
}

Explainer::~Explainer() {
  dns_.reset();
  domain_dns_.reset();
}

void Explainer::start(Done done) {
  done_ = std::move(done);
  auto self = shared_from_this();
  const auto& client = facts_.request.client;
  facts_.now = wall_clock_seconds();
  facts_.backend_ehlo = server_.backend_ehlo();
  facts_.under_stress = server_.under_stress();
  facts_.limits = server_.client_limits_now(
      protocol::client_network(client, runtime_->config->limits.ipv6_prefix).network,
      &facts_.concurrent);
  timer_.init<&Explainer::timer_fired>(server_.loop(), this);
  Resolver* resolver = server_.resolver();
  facts_.resolver = resolver != nullptr;
  // Store reads and the client's DNS, all at once; nothing is written.
  stage1_ = resolver ? 4 : 3;
  Store& store = server_.store();
  store.get(server_.bans().key(checks::store_keys::kBan, client),
            [self](StoreStatus st, const std::string& v) {
              self->facts_.ban_status = st;
              self->facts_.ban_record = v;
              self->stage1_done();
            });
  store.get(checks::pass_cache_key(client), [self](StoreStatus st, const std::string& v) {
    self->facts_.pass_status = st;
    self->facts_.pass_record = v;
    self->stage1_done();
  });
  store.get(server_.bans().key(checks::store_keys::kFakeMxFirst, client),
            [self](StoreStatus st, const std::string&) {
              self->facts_.nolisting_pass = st == StoreStatus::kOk;
              self->stage1_done();
            });
  if (!resolver) return;
  ClientLookupsOptions options;
  options.reply_text = runtime_->config->dnsbl.reply_text;
  dns_ = std::make_unique<ClientLookups>(*resolver, server_.dnsbl_health(), runtime_->dnsbl_sites,
                                         client, options, [this](ClientDnsEvent event) {
                                           if (event == ClientDnsEvent::kDone) client_dns_done();
                                         });
  // The PTR, then the A/AAAA of its names: two lookups in a row at most, each within
  // dns.timeout. What has not answered by then counts as a greet wait's end counts it.
  auto bound = runtime_->config->dns.timeout * 2 + std::chrono::milliseconds(500);
  timer_.start(std::chrono::duration_cast<std::chrono::milliseconds>(bound));
}

void Explainer::client_dns_done() {
  if (!dns_) return;
  facts_.dns = dns_->snapshot();
  dns_.reset();  // no answer after this (ClientLookups allows it inside its callback)
  timer_.stop();
  stage1_done();
}

void Explainer::timer_fired() {
  facts_.timed_out = true;
  if (dns_) {
    client_dns_done();
  } else {
    domain_dns_.reset();
    spf_.reset();
    start_greylist();
  }
}

void Explainer::stage1_done() {
  if (--stage1_ == 0) start_stage2();
}

void Explainer::start_stage2() {
  const auto& req = facts_.request;
  const Config& c = *runtime_->config;
  const std::string helo = explain_helo(facts_);
  std::string reverse;
  if (facts_.dns && facts_.dns->ptr == PtrState::kFound) reverse = facts_.dns->ptr_name;
  stage2_ = 1;  // this function's own, released at its end
  Resolver* resolver = server_.resolver();
  if (resolver && runtime_->plan.needs(checks::kNeedDomainDns)) {
    auto plan = domain_lookup_plan(*runtime_, helo, req.sender, reverse);
    if (plan.empty()) {
      facts_.domains = checks::DomainFacts{};
    } else {
      ++stage2_;
      domain_dns_ = std::make_unique<DomainLookups>(*resolver, std::move(plan),
                                                    [this](const checks::DomainFacts& facts) {
                                                      facts_.domains = facts;
                                                      stage2_done();
                                                    });
    }
  }
  if (c.sender.spf != checks::SpfMode::kOff) {
    checks::SpfRequest request{req.client, helo, req.sender, c.server.hostname, facts_.now};
    if (!resolver) {
      checks::SpfFinding f;
      f.result = checks::SpfResult::kTempError;
      f.problem = "no DNS resolver";
      facts_.spf = f;
    } else {
      ++stage2_;
      spf_ = std::make_unique<SpfEvaluation>(server_.loop(), *resolver, c.sender, request,
                                             [this](const checks::SpfFinding& finding) {
                                               facts_.spf = finding;
                                               stage2_done();
                                             });
      if (spf_->immediate()) {
        facts_.spf = *spf_->immediate();
        --stage2_;
      }
    }
  }
  if (stage2_ > 1) {
    auto bound =
        std::max(c.dns.timeout, c.sender.spf == checks::SpfMode::kOff ? std::chrono::milliseconds(0)
                                                                      : c.sender.spf_timeout) +
        std::chrono::milliseconds(500);
    timer_.start(bound);
  }
  stage2_done();
}

void Explainer::stage2_done() {
  if (--stage2_ == 0) start_greylist();
}

void Explainer::start_greylist() {
  if (greylist_started_) return;
  greylist_started_ = true;
  timer_.stop();
  const auto& req = facts_.request;
  const Config& c = *runtime_->config;
  if (!c.greylist.enabled) return finish();
  // The query the session's greylist_rcpt makes (session_store.cc), from the same facts.
  GreylistQuery query;
  query.client = req.client;
  if (facts_.dns && facts_.dns->fcrdns == FcrdnsState::kConfirmed) {
    query.verified_name = facts_.dns->ptr_name;
  }
  query.sender = req.sender;
  query.recipient = req.recipient_given ? req.recipient : "postmaster@" + c.server.hostname;
  const std::string helo = explain_helo(facts_);
  if (facts_.spf) {
    query.spf_result = facts_.spf->result;
    if (facts_.spf->result == checks::SpfResult::kPass) query.spf_domain = facts_.spf->domain;
  }
  if (runtime_->greylist_only_if != 0) {
    checks::ClientFacts f;
    f.client = req.client;
    if (facts_.dns) {
      f.fcrdns = facts_.dns->fcrdns == FcrdnsState::kConfirmed;
      if (facts_.dns->ptr == PtrState::kFound) f.ptr_name = facts_.dns->ptr_name;
      f.dnsbl_rank = facts_.dns->dnsbl_rank;
    }
    f.helo = helo;
    if (facts_.domains) f.helo_exists = facts_.domains->helo;
    if (facts_.spf) f.spf = std::string(checks::to_string(facts_.spf->result));
    query.facts = f;
  }
  // The session's own greylist_triplet, on a store that only reads.
  auto self = shared_from_this();
  dry_store_ = std::make_unique<DryRunStore>(server_.store());
  greylist_triplet(*dry_store_, *runtime_, query, [self](GreylistAnswer answer) {
    GreylistPeek peek;
    peek.answer = std::move(answer);
    peek.reads = self->dry_store_->reads;
    self->facts_.greylist = std::move(peek);
    self->finish();
  });
}

void Explainer::finish() {
  if (finished_) return;
  finished_ = true;
  timer_.close();
  auto report = conclude(*runtime_, facts_);
  auto done = std::move(done_);
  done(facts_.request.json ? format_json(report) : format_text(report));
  // Not domain_dns_.reset() here: its callback may be what runs this; the destructor drops it.
}

void serve_explain(Server& server, const std::vector<std::string>& args,
                   std::function<void(const std::string&)> reply) {
  auto request = parse_explain_request(args);
  if (!request.error.empty()) return reply(request.error + "\n");
  auto explainer = std::make_shared<Explainer>(server, std::move(request));
  explainer->start([explainer, reply](const std::string& text) { reply(text + "OK\n"); });
}

std::chrono::milliseconds explain_time_limit(const Config& config) {
  auto names = config.sender.spf == checks::SpfMode::kOff
                   ? config.dns.timeout
                   : std::max(config.dns.timeout, config.sender.spf_timeout);
  return config.server.ctl_timeout + config.dns.timeout * 2 + names + std::chrono::seconds(2);
}

}  // namespace mxscreen::proxy
