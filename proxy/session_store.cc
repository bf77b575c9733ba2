// proxy/session_store.cc: what a session asks of the state store (DESIGN.md "Greylisting and
// the verdict cache"). At connect, the verdict cache (checks/pass_cache.h, one expiry per test)
// sends a known good client straight to the backend (PASS OLD), looks its DNSBL verdict up again
// when only that expired, or has it screened again; a client that passes is cached (PASS NEW). At
// the RCPT that would hand off, greylisting (checks/greylist) may answer 450 instead. The store
// failing (Redis down, LMDB full) fails open: no cache hit, no greylisting, logged and counted.
#include "checks/greylist.h"
#include "checks/pass_cache.h"
#include "proxy/greylisting.h"
#include "proxy/log.h"
#include "proxy/screening.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
checks::PassTtls Session::pass_ttls() const { return proxy::pass_ttls(config().cache); }

checks::CachedTestSet Session::cached_tests_enabled() const {
  return proxy::cached_tests_enabled(*runtime_);
}

void Session::lookup_pass_cache() {
  if (!config().cache.enabled) {
    continue_after_cache();
    return;
  }
  auto alive = alive_;
  server_.store().get(
      checks::pass_cache_key(client_.address),
      [this, alive](StoreStatus status, const std::string& value) {
        if (!*alive || state_ == State::kDone) return;
        auto record = status == StoreStatus::kOk ? checks::parse_pass_record(value) : std::nullopt;
        if (!record) {
          // An unreadable record (one of an earlier version) is no pass: screened again.
          metrics().inc("mxscreen_cache_total", status == StoreStatus::kUnavailable
                                                    ? "result=\"unavailable\""
                                                    : "result=\"miss\"");
          continue_after_cache();
          return;
        }
        auto check =
            checks::check_pass_record(*record, cached_tests_enabled(), wall_clock_seconds());
        std::string expired;
        for (auto test : check.expired) {
          std::string name(checks::to_string(test));
          expired += (expired.empty() ? "" : ",") + name;
          metrics().inc("mxscreen_cache_expired_total", "test=\"" + name + "\"");
        }
        switch (check.verdict) {
          case checks::CacheVerdict::kPassOld:
            metrics().inc("mxscreen_cache_total", "result=\"hit\"");
            pass_old("");
            return;
          case checks::CacheVerdict::kRecheckDnsbl:
            if (server_.resolver()) {
              // postscreen looks an expired DNSBL verdict up again; the DNS cache makes it cheap.
              metrics().inc("mxscreen_cache_total", "result=\"dnsbl_expired\"");
              pre_->cached_pass = std::make_unique<checks::PassRecord>(*record);
              start_client_dns();  // on_client_dns decides when the DNSBL answers are in
              return;
            }
            break;
          case checks::CacheVerdict::kScreen:
            break;
        }
        metrics().inc("mxscreen_cache_total", "result=\"expired\"");
        Log::event(LogLevel::kInfo, "CACHE",
                   "CACHE expired " + expired + " for " + who() + ": screening as a new client",
                   {{"client", client_labels()}, {"expired", expired}});
        continue_after_cache();
      });
}

void Session::dnsbl_rechecked() {
  auto record = std::move(pre_->cached_pass);
  const auto& snap = dns_->snapshot();
  if (snap.dnsbl_rank >= config().dnsbl.threshold) {
    metrics().inc("mxscreen_cache_dnsbl_recheck_total", "outcome=\"listed\"");
    Log::event(LogLevel::kInfo, "CACHE",
               "CACHE DNSBL re-check lists " + who() + " (rank " + std::to_string(snap.dnsbl_rank) +
                   "): screening as a new client",
               {{"client", client_labels()}, {"rank", std::to_string(snap.dnsbl_rank)}});
    continue_after_cache();  // the greet test scores the answers already in
    return;
  }
  metrics().inc("mxscreen_cache_dnsbl_recheck_total", "outcome=\"pass\"");
  int64_t now = wall_clock_seconds();
  auto ttl = checks::dnsbl_verdict_ttl(std::chrono::seconds(snap.dnsbl_ttl), pass_ttls());
  record->expires[static_cast<std::size_t>(checks::CachedTest::kDnsbl)] = now + ttl.count();
  server_.store().put(checks::pass_cache_key(client_.address), checks::format_pass_record(*record),
                      std::chrono::seconds(record->latest() - now));
  pass_old(" (DNSBL re-checked)");
}

void Session::pass_old(const std::string& how) {
  Log::event(LogLevel::kInfo, "PASS", "PASS OLD " + who() + how, {{"client", client_labels()}});
  client_gets_backend_banner_ = true;  // no banner of ours: Postfix greets the client
  client_conn_.start_reading();
  start_handoff();
}

void Session::pass_new(const std::string& how) {
  Log::event(LogLevel::kInfo, "PASS", "PASS NEW " + who() + how, {{"client", client_labels()}});
  if (!config().cache.enabled) return;
  // The tests this client passed now; a test that did not run (the deep tests of a session
  // handed off before any dialogue) or failed with action ignore is not a pass.
  auto enabled = cached_tests_enabled();
  bool dnswl = false;
  int rank = 0;
  uint32_t dnsbl_ttl = 0;
  if (dns_) {
    rank = dns_->snapshot().dnsbl_rank;
    dnsbl_ttl = dns_->snapshot().dnsbl_done() ? dns_->snapshot().dnsbl_ttl : 0;
    dnswl = !runtime_->dnsbl_sites->empty() && rank <= config().dnsbl.allowlist_threshold;
  }
  using checks::CachedTest;
  checks::CachedTestSet passed{};
  auto at = [&passed](CachedTest t) -> bool& { return passed[static_cast<std::size_t>(t)]; };
  at(CachedTest::kPregreet) = pre_->pregreet && !pre_->pregreet->hit();
  at(CachedTest::kDnsbl) = dns_ && rank < config().dnsbl.threshold;
  for (auto [test, name] : {std::pair{CachedTest::kPipelining, "pipelining"},
                            std::pair{CachedTest::kNonSmtp, "non_smtp"},
                            std::pair{CachedTest::kBareNewline, "bare_newline"}}) {
    at(test) = pre_->dialogue && !pre_->dialogue->failed(name);
  }
  for (std::size_t i = 0; i < passed.size(); ++i) passed[i] = passed[i] && enabled[i];
  if (dnswl) passed = enabled;  // postscreen: a DNSWL pass stands in for every other test
  int64_t now = wall_clock_seconds();
  auto record = checks::new_pass_record(
      passed, now, pass_ttls(),
      checks::dnsbl_verdict_ttl(std::chrono::seconds(dnsbl_ttl), pass_ttls()), dnswl);
  if (record.latest() <= now) return;  // nothing to remember
  server_.store().put(checks::pass_cache_key(client_.address), checks::format_pass_record(record),
                      std::chrono::seconds(record.latest() - now));
}

void Session::greylist_rcpt() {
  if (nolisting_pass_ && config().greylist.skip_on_nolisting_pass) {
    GreylistAnswer answer;
    answer.outcome = "nolisting";
    answer.key = "none";  // no triplet was keyed
    greylist_decided(answer);
    return;
  }
  if (!greylist_facts_ready()) {
    // on_client_dns calls again when the answers are in: a key chosen on half the facts
    // would differ between a first try and its retry.
    pre_->greylist_waits_dns = true;
    pre_->store_wait = true;
    client_conn_.stop_reading();
    return;
  }
  GreylistQuery query;
  query.client = client_.address;
  // The allowlist files match the client's forward-confirmed name too.
  if (dns_ && dns_->snapshot().fcrdns == FcrdnsState::kConfirmed) {
    query.verified_name = dns_->snapshot().ptr_name;
  }
  query.sender = pre_->dialogue->sender().address;
  query.recipient = pre_->dialogue->recipient().address;
  if (const auto* spf = spf_finding()) {
    query.spf_result = spf->result;
    if (spf->result == checks::SpfResult::kPass) query.spf_domain = spf->domain;
  }
  if (runtime_->greylist_only_if != 0) query.facts = client_facts();
  pre_->store_wait = true;
  client_conn_.stop_reading();
  auto alive = alive_;
  greylist_triplet(server_.store(), *runtime_, query, [this, alive](GreylistAnswer answer) {
    if (!*alive || state_ == State::kDone) return;
    greylist_decided(answer);
  });
}

bool Session::greylist_facts_ready() const {
  if (!dns_) return true;
  const auto& greylist = config().greylist;
  const auto& snap = dns_->snapshot();
  if ((greylist.identity_keys || runtime_->greylist_only_if != 0) &&
      snap.fcrdns == FcrdnsState::kPending) {
    return false;
  }
  return runtime_->greylist_only_if == 0 || snap.dnsbl_done();
}

checks::ClientFacts Session::client_facts() const {
  checks::ClientFacts f;
  f.client = client_.address;
  if (dns_) {
    const auto& snap = dns_->snapshot();
    f.fcrdns = snap.fcrdns == FcrdnsState::kConfirmed;
    if (snap.ptr == PtrState::kFound) f.ptr_name = snap.ptr_name;
    f.dnsbl_rank = snap.dnsbl_rank;
  }
  f.helo = pre_->dialogue->helo();
  f.helo_exists = pre_->helo_exists;
  if (const auto* spf = spf_finding()) f.spf = std::string(checks::to_string(spf->result));
  return f;
}

void Session::greylist_decided(const GreylistAnswer& answer) {
  pre_->store_wait = false;
  auto finding =
      checks::greylist_finding(answer, who(), pre_->dialogue->sender().address,
                               pre_->dialogue->recipient().address, config().greylist.reply_text);
  apply(finding);
  if (finding.then == checks::Finding::Then::kDeferRcpt) {
    resume_dialogue();
    return;
  }
  // A recipient on the allowlist (postmaster@) lets this one RCPT through; it says nothing
  // about the client, so it earns no pass in the verdict cache.
  if (!answer.recipient_allowlisted) pass_new("");
  stop_command_timer();
  start_handoff();
}

void Session::resume_dialogue() {
  if (state_ != State::kDialogue || pre_->sleeping || pre_->store_wait) return;
  client_conn_.start_reading();
  std::string rest = std::move(held_);
  held_.clear();
  if (!rest.empty()) dialogue_input(rest);
  run_dialogue();
}

}  // namespace mxscreen::proxy
