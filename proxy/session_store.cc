// proxy/session_store.cc: what a session asks of the state store (DESIGN.md "Greylisting and
// the verdict cache"). At connect, a cached PASS sends a known good client straight to the
// backend (PASS OLD); a client that passes every test is cached (PASS NEW). At the RCPT that
// would hand off, greylisting (checks/greylist) may answer 450 instead. The store failing
// (Redis down, LMDB full) fails open: no cache hit, no greylisting, logged and counted.
#include "checks/greylist.h"
#include "protocol/escape.h"
#include "proxy/greylisting.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
namespace {

std::string cache_key(const protocol::IpAddress& client) { return "pass:" + client.to_string(); }

}  // namespace

void Session::lookup_pass_cache() {
  if (config().cache.pass_ttl.count() <= 0) {
    continue_after_cache();
    return;
  }
  auto alive = alive_;
  server_.store().get(cache_key(client_.address), [this, alive](StoreStatus status,
                                                                const std::string&) {
    if (!*alive || state_ == State::kDone) return;
    if (status == StoreStatus::kOk) {
      metrics().inc("mxscreen_cache_total", "result=\"hit\"");
      Log::event(LogLevel::kInfo, "PASS", "PASS OLD " + who(), {{"client", client_labels()}});
      client_gets_backend_banner_ = true;  // no banner of ours: Postfix greets the client
      client_conn_.start_reading();
      start_handoff();
      return;
    }
    metrics().inc("mxscreen_cache_total",
                  status == StoreStatus::kNotFound ? "result=\"miss\"" : "result=\"unavailable\"");
    continue_after_cache();
  });
}

void Session::pass_new(const std::string& how) {
  Log::event(LogLevel::kInfo, "PASS", "PASS NEW " + who() + how, {{"client", client_labels()}});
  auto ttl = std::chrono::duration_cast<std::chrono::seconds>(config().cache.pass_ttl);
  if (ttl.count() > 0) server_.store().put(cache_key(client_.address), "1", ttl);
}

void Session::greylist_rcpt() {
  if (nolisting_pass_ && config().greylist.skip_on_nolisting_pass) {
    GreylistAnswer answer;
    answer.outcome = "nolisting";
    greylist_decided(answer);
    return;
  }
  GreylistQuery query;
  query.client = client_.address;
  // The allowlist files match the client's forward-confirmed name too.
  if (dns_ && dns_->snapshot().fcrdns == FcrdnsState::kConfirmed) {
    query.verified_name = dns_->snapshot().ptr_name;
  }
  query.sender = dialogue_->sender().address;
  query.recipient = dialogue_->recipient().address;
  store_wait_ = true;
  client_conn_.stop_reading();
  auto alive = alive_;
  greylist_triplet(server_.store(), *runtime_, query, [this, alive](GreylistAnswer answer) {
    if (!*alive || state_ == State::kDone) return;
    greylist_decided(answer);
  });
}

void Session::greylist_decided(const GreylistAnswer& answer) {
  store_wait_ = false;
  std::string envelope = " from=<" + protocol::printable(dialogue_->sender().address, 255) +
                         "> to=<" + protocol::printable(dialogue_->recipient().address, 255) + ">";
  auto log = [&](const std::string& outcome, const std::string& extra = "") {
    Log::event(LogLevel::kInfo, "GREYLIST", "GREYLIST " + outcome + " " + who() + envelope + extra,
               {{"client", client_labels()}, {"outcome", outcome}});
    metrics().inc("mxscreen_greylist_total", "outcome=\"" + outcome + "\"");
  };
  if (answer.verdict == GreylistAnswer::Verdict::kStoreUnavailable) {
    Log::event(LogLevel::kWarning, "GREYLIST",
               "GREYLIST skipped for " + who() + ": state store unavailable; failing open",
               {{"client", client_labels()}});
    metrics().inc("mxscreen_greylist_total", "outcome=\"store_unavailable\"");
  } else if (answer.verdict == GreylistAnswer::Verdict::kDefer) {
    log(answer.outcome, " retry in " + std::to_string(answer.wait.count()) + "s");
    apply_step(dialogue_->refuse_handoff(
        "450 4.2.0 <" + protocol::printable(dialogue_->recipient().address, 255) +
        ">: Recipient address rejected: " + config().greylist.reply_text));
    resume_dialogue();
    return;
  } else {
    log(answer.outcome, protocol::printable(answer.detail, 300));
  }
  // A recipient on the allowlist (postmaster@) lets this one RCPT through; it says nothing
  // about the client, so it earns no pass in the verdict cache.
  if (!answer.recipient_allowlisted) pass_new("");
  stop_command_timer();
  start_handoff();
}

void Session::resume_dialogue() {
  if (state_ != State::kDialogue || sleeping_ || store_wait_) return;
  client_conn_.start_reading();
  std::string rest = std::move(held_);
  held_.clear();
  if (!rest.empty()) dialogue_input(rest);
  run_dialogue();
}

}  // namespace mxscreen::proxy
