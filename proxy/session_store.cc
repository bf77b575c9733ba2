// proxy/session_store.cc: what a session asks of the state store (DESIGN.md "Greylisting and
// the verdict cache"). At connect, a cached PASS sends a known good client straight to the
// backend (PASS OLD); a client that passes every test is cached (PASS NEW). At the RCPT that
// would hand off, greylisting (checks/greylist) may answer 450 instead. The store failing
// (Redis down, LMDB full) fails open: no cache hit, no greylisting, logged and counted.
#include "checks/greylist.h"
#include "protocol/escape.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
namespace {

std::string cache_key(const protocol::IpAddress& client) { return "pass:" + client.to_string(); }

checks::GreylistPolicy greylist_policy(const GreylistConfig& c) {
  using Sec = std::chrono::seconds;
  checks::GreylistPolicy p;
  p.delay = std::chrono::duration_cast<Sec>(c.delay);
  p.retry_window = std::chrono::duration_cast<Sec>(c.retry_window);
  p.max_age = std::chrono::duration_cast<Sec>(c.max_age);
  p.ipv4_prefix = c.ipv4_prefix;
  p.ipv6_prefix = c.ipv6_prefix;
  p.auto_allowlist_clients = c.auto_allowlist_clients;
  p.strip_sender_tags = c.strip_sender_tags;
  return p;
}

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
    greylist_decided("", StoreStatus::kOk, "nolisting");
    return;
  }
  // The allowlist files: the client (address, or its forward-confirmed name) or the recipient.
  std::string why;
  std::string verified;
  if (dns_ && dns_->snapshot().fcrdns == FcrdnsState::kConfirmed) {
    verified = dns_->snapshot().ptr_name;
  }
  if (runtime_->greylist_clients->matches(client_.address, verified, &why)) {
    greylist_decided("", StoreStatus::kOk, "allowlisted", " by client_allowlist_file: " + why);
    return;
  }
  if (runtime_->greylist_recipients->matches(dialogue_->recipient().address, &why)) {
    greylist_decided("", StoreStatus::kOk, "allowlisted", " by recipient_allowlist_file: " + why);
    return;
  }
  store_wait_ = true;
  client_conn_.stop_reading();
  auto policy = greylist_policy(config().greylist);
  auto alive = alive_;
  // First: is the client auto-allowlisted (it passed greylisting often enough before)?
  server_.store().get(
      checks::client_allowlist_key(client_.address),
      [this, alive, policy](StoreStatus status, const std::string& value) {
        if (!*alive || state_ == State::kDone) return;
        if (status == StoreStatus::kOk && checks::client_allowlisted(value, policy)) {
          greylist_decided("", StoreStatus::kOk, "allowlisted");
          return;
        }
        std::string key = checks::greylist_key(client_.address, dialogue_->sender().address,
                                               dialogue_->recipient().address, policy);
        server_.store().get(key, [this, alive, key](StoreStatus st, const std::string& record) {
          if (!*alive || state_ == State::kDone) return;
          greylist_decided(key, st, record);
        });
      });
}

void Session::greylist_decided(const std::string& key, StoreStatus status,
                               const std::string& record, const std::string& detail) {
  store_wait_ = false;
  auto policy = greylist_policy(config().greylist);
  std::string envelope = " from=<" + protocol::printable(dialogue_->sender().address, 255) +
                         "> to=<" + protocol::printable(dialogue_->recipient().address, 255) + ">";
  auto log = [&](const std::string& outcome, const std::string& extra = "") {
    Log::event(LogLevel::kInfo, "GREYLIST", "GREYLIST " + outcome + " " + who() + envelope + extra,
               {{"client", client_labels()}, {"outcome", outcome}});
    metrics().inc("mxscreen_greylist_total", "outcome=\"" + outcome + "\"");
  };
  auto hand_off = [&]() {
    pass_new("");
    stop_command_timer();
    start_handoff();
  };
  if (key.empty()) {  // allowlisted client or recipient, or the nolisting pass
    log(record, protocol::printable(detail, 300));
    hand_off();
    return;
  }
  if (status == StoreStatus::kUnavailable) {
    Log::event(LogLevel::kWarning, "GREYLIST",
               "GREYLIST skipped for " + who() + ": state store unavailable; failing open",
               {{"client", client_labels()}});
    metrics().inc("mxscreen_greylist_total", "outcome=\"store_unavailable\"");
    hand_off();
    return;
  }
  int64_t now = wall_clock_seconds();
  auto result = checks::decide(
      status == StoreStatus::kOk ? std::optional<std::string_view>(record) : std::nullopt, now,
      policy);
  Store& store = server_.store();
  store.put(key, result.new_record, result.ttl);
  std::string outcome(checks::to_string(result.outcome));
  if (result.passed()) {
    log(outcome);
    // postgrey's auto-allowlist: count this client's pass, at most once an hour.
    std::string client_key = checks::client_allowlist_key(client_.address);
    store.get(client_key, [&store, client_key, now, policy](StoreStatus st, const std::string& v) {
      auto updated = checks::count_client_pass(
          st == StoreStatus::kOk ? std::optional<std::string_view>(v) : std::nullopt, now, policy);
      if (updated) store.put(client_key, *updated, policy.max_age);
    });
    hand_off();
    return;
  }
  log(outcome, " retry in " + std::to_string(result.wait.count()) + "s");
  apply_step(dialogue_->refuse_handoff(
      "450 4.2.0 <" + protocol::printable(dialogue_->recipient().address, 255) +
      ">: Recipient address rejected: " + config().greylist.reply_text));
  resume_dialogue();
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
