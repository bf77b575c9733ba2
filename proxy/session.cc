// proxy/session.cc: see session.h. Reply texts and log lines follow postscreen's where it has
// one. This file holds the client side, before the handoff and after it (what the Handoff asks
// of its HandoffClient); handoff.cc the backend side.
#include "proxy/session.h"

#include <algorithm>

#include "checks/access.h"
#include "checks/dnsbl.h"
#include "checks/domain.h"
#include "checks/fake_mx.h"
#include "checks/finding.h"
#include "checks/limits.h"
#include "checks/non_smtp.h"
#include "checks/pregreet.h"
#include "checks/replies.h"
#include "checks/spam_trap.h"
#include "protocol/ehlo.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "proxy/domain_dns.h"
#include "proxy/log.h"
#include "proxy/screening.h"

namespace mxscreen::proxy {
namespace {

using Ms = std::chrono::milliseconds;
using checks::format_seconds;

// How long an upstream balancer may take to send its PROXY header.
constexpr Ms kProxyHeaderTimeout{10000};
// Stress mode (server.stress_threshold): Postfix's stress-dependent defaults.
constexpr Ms kStressGreetWait{2000};
constexpr Ms kStressCommandTime{10000};

const char* role_name(ListenRole role) { return role == ListenRole::kFakeMx ? "fake_mx" : "mx"; }

}  // namespace

Session::Session(Server& server, const Listener& listener)
    : server_(server),
      listener_(listener),
      runtime_(server.runtime()),
      client_conn_(*this),
      started_(std::chrono::steady_clock::now()) {}

Session::~Session() {
  *alive_ = false;
  handoff_.reset();  // gives its backend slot and splice(2) descriptors back
  if (counted_) server_.client_disconnect(limits_network());
}

protocol::IpAddress Session::limits_network() const {
  // An IPv6 client counts per limits.ipv6_prefix network, as Postfix 3.8's anvil does
  // (smtpd_client_ipv6_prefix_length): rotating through a /64 does not reset the limits.
  return protocol::client_network(client_.address, config().limits.ipv6_prefix).network;
}

bool Session::within_client_limits() {
  auto result = server_.client_connect(limits_network());
  if (result == checks::ClientLimits::Result::kOk) {
    counted_ = true;
    return true;
  }
  const auto& limits = config().limits;
  apply(checks::client_limit_finding(client_.address, who(), result, limits.client_connection_count,
                                     limits.client_connection_rate));
  return false;
}

std::string Session::client_labels() const { return client_.address.to_string(); }

bool Session::accept(uv_stream_t* listener_stream) {
  if (client_conn_.init(server_.loop()) != 0) return false;
  if (uv_accept(listener_stream, client_conn_.stream()) != 0) return false;
  uv_tcp_nodelay(client_conn_.tcp(), 1);
  int peer_error = 0;
  auto peer = tcp_peer(client_conn_.tcp(), &peer_error);
  if (!peer) {
    // Gone (reset) between the kernel's accept and ours: no address to screen, limit or log.
    Log::warning("connection on " + listener_.label + " closed: client address unknown (" +
                 uv_error(peer_error) + ")");
    metrics().inc("mxscreen_connections_unknown_peer_total");
    client_conn_.close();
    server_.session_ended(this);
    return true;
  }
  client_ = *peer;
  local_ = tcp_local(client_conn_.tcp());
  if (listener_.config.proxy_protocol) {
    if (!proxy_upstream_trusted()) return true;
    state_ = State::kProxyHeader;
    client_conn_.start_reading();
    arm_timer(kProxyHeaderTimeout);
  } else {
    connect_decision();
  }
  return true;
}

bool Session::proxy_upstream_trusted() {
  const auto& trusted = listener_.config.proxy_trusted;
  if (std::any_of(trusted.begin(), trusted.end(),
                  [&](const protocol::Cidr& net) { return net.contains(client_.address); })) {
    return true;
  }
  // Never read a byte from it: whatever it would say about a client is not believed.
  Log::event(LogLevel::kWarning, "PROXY",
             "PROXY connection from untrusted upstream " + who() + " to " + local_.log_string() +
                 " (not in proxy_trusted); closing",
             {{"upstream", client_labels()}, {"listener", listener_.label}});
  metrics().inc("mxscreen_proxy_untrusted_total",
                "listener=\"" + label_value(listener_.label) + "\"");
  client_conn_.close();
  finish("proxy_untrusted");
  return false;
}

void Session::connect_decision() {
  // From here until the greet (or the handoff) starts, client bytes are only held: the connect
  // decision may wait for the store (a ban lookup over Redis).
  state_ = State::kConnect;
  Log::event(LogLevel::kInfo, "CONNECT", "CONNECT from " + who() + " to " + local_.log_string(),
             {{"client", client_labels()},
              {"client_port", std::to_string(client_.port)},
              {"listener", listener_.label}});
  metrics().inc("mxscreen_connections_total", "listener=\"" + label_value(listener_.label) +
                                                  "\",role=\"" + role_name(listener_.config.role) +
                                                  "\"");

  if (server_.active_sessions() > server_.session_limit()) {
    // The open-files limit may hold fewer sessions than server.max_sessions (main.cc warns).
    bool files = server_.session_limit() < static_cast<size_t>(config().server.max_sessions);
    apply(checks::server_busy_finding(who(), files));
    return;
  }
  // Before any test (no DNS, no store, no greet wait) when Postfix has no room and the queue
  // no place anyway.
  if (listener_.config.role == ListenRole::kMx && refuse_if_backend_full()) return;
  auto decision = runtime_->access.decide(client_.address);
  if (decision == checks::AccessDecision::kReject) {
    apply(checks::access_finding(decision, client_.address, who()));
    return;
  }
  if (decision == checks::AccessDecision::kPermit && listener_.config.role == ListenRole::kMx) {
    apply(checks::access_finding(decision, client_.address, who()));
    client_gets_backend_banner_ = true;
    client_conn_.start_reading();  // anything early is held and replayed after the banner
    start_handoff();
    return;
  }
  permitted_ = decision == checks::AccessDecision::kPermit;
  check_ban();  // then after_ban_check()
}

void Session::after_ban_check() {
  if (!permitted_ && !within_client_limits()) return;
  if (listener_.config.role == ListenRole::kFakeMx) {
    apply(checks::fake_mx_hit(to_string(config().fake_mx.action), who()));
    if (permitted_) return fake_mx_action();
    record_fake_mx_hit([this, alive = alive_] {
      if (*alive && state_ != State::kDone) fake_mx_action();
    });
    return;
  }
  record_mx_visit();
  lookup_pass_cache();
}

void Session::fake_mx_action() {
  auto finding = checks::fake_mx_action_finding(config().fake_mx.action);
  apply(finding);
  if (!finding.ends_session()) start_greet();  // the dialogue answers 450 at every RCPT
}

void Session::continue_after_cache() {
  // A DNSBL re-check (session_store.cc) started them already.
  if (runtime_->plan.needs(checks::kNeedClientDns) && !dns_) start_client_dns();
  start_greet();
}

void Session::start_client_dns() {
  Resolver* resolver = server_.resolver();
  if (!resolver) return;
  ClientLookupsOptions options;
  options.reply_text = config().dnsbl.reply_text;
  // Every lookup starts now and runs during the greet wait, all in parallel.
  dns_ = std::make_unique<ClientLookups>(*resolver, server_.dnsbl_health(), runtime_->dnsbl_sites,
                                         client_.address, options,
                                         [this](ClientDnsEvent event) { on_client_dns(event); });
}

void Session::on_client_dns(ClientDnsEvent event) {
  if (handoff_) {  // handing off: only the verified name is still wanted (XCLIENT)
    if (event == ClientDnsEvent::kDone) release_client_dns();
    return;
  }
  if (pre_->greylist_waits_dns) {
    if (!greylist_facts_ready()) return;
    pre_->greylist_waits_dns = false;
    greylist_rcpt();
    return;
  }
  if (pre_->cached_pass) {
    if (dns_->snapshot().dnsbl_done()) dnsbl_rechecked();
    return;
  }
  // postscreen's allowlist threshold: a DNSWL-listed client that has not talked early skips
  // the rest of the wait and every further test.
  if (state_ != State::kGreet || runtime_->dnsbl_sites->empty() || pre_->pregreet->hit()) return;
  const auto& snap = dns_->snapshot();
  if (snap.dnsbl_done() && snap.dnsbl_rank <= config().dnsbl.allowlist_threshold) {
    stop_timer();
    greet_done();
  }
}

bool Session::apply_dnsbl(bool* allowlisted) {
  *allowlisted = false;
  if (!dns_ || runtime_->dnsbl_sites->empty()) return true;
  const auto& snap = dns_->snapshot();
  const auto& dnsbl = config().dnsbl;
  for (const auto& finding : checks::dnsbl_findings(
           client_.address, who(), snap.dnsbl_rank, snap.dnsbl_hits, snap.reply_text,
           dnsbl.threshold, dnsbl.allowlist_threshold, dnsbl.action, dnsbl.reply_map)) {
    apply(finding);
    if (finding.then == checks::Finding::Then::kAllowlist) *allowlisted = true;
  }
  return state_ != State::kDone;
}

void Session::start_greet() {
  state_ = State::kGreet;
  const auto& greet = config().greet;
  client_write(checks::replies::greeting(runtime_->banner, true) + "\r\n");
  pre_->pregreet.emplace(greet.action, std::chrono::steady_clock::now());
  // Bytes that came during the connect decision (behind a PROXY header) talked early.
  if (!held_.empty()) {
    std::string early = std::move(held_);
    held_.clear();
    on_client_bytes(early);
    if (state_ != State::kGreet) return;  // pregreet drop
  }
  client_conn_.start_reading();
  // Postfix's stress mode: postscreen_greet_wait = ${stress?{2}:{6}}s. The server keeps one
  // timer for every greet wait (held sessions carry no timer of their own).
  auto wait = server_.under_stress() ? std::min(greet.wait, kStressGreetWait) : greet.wait;
  pre_->wake_deadline =
      uv_now(server_.loop()) + static_cast<uint64_t>(std::max<int64_t>(1, wait.count()));
  server_.wake_at(this, alive_, pre_->wake_deadline);
}

void Session::greet_done() {
  auto verdict = pre_->pregreet->verdict();
  apply(checks::pregreet_verdict(*pre_->pregreet));
  bool dnswl = false;
  if (!apply_dnsbl(&dnswl)) return;
  if (dnswl && verdict.outcome != checks::Outcome::kEnforce &&
      listener_.config.role == ListenRole::kMx) {
    pass_new(" (DNSWL)");
    start_handoff();
    return;
  }
  bool fake_mx = listener_.config.role == ListenRole::kFakeMx;
  bool enforced =
      verdict.outcome == checks::Outcome::kEnforce || !pre_->dnsbl_enforce_reply.empty();
  if (!runtime_->plan.dialogue_needed() && !fake_mx && !enforced) {
    // Only connection tests are on: hand off now; our final 220 goes out with the splice.
    pass_new("");
    start_handoff();
    return;
  }
  client_write(checks::replies::greeting(runtime_->banner) + "\r\n");
  start_dialogue();
}

checks::DialogueClient Session::dialogue_client() const {
  DialogueFacts facts;
  facts.client = client_.address;
  facts.client_port = client_.port;
  facts.fake_mx = listener_.config.role == ListenRole::kFakeMx;
  facts.under_stress = server_.under_stress();
  facts.pregreet_enforced =
      pre_->pregreet && pre_->pregreet->verdict().outcome == checks::Outcome::kEnforce;
  facts.dnsbl_enforce_reply = pre_->dnsbl_enforce_reply;
  facts.dns = dns_ ? &dns_->snapshot() : nullptr;
  facts.local = local_.address;
  return make_dialogue_client(*runtime_, facts);
}

void Session::start_dialogue() {
  state_ = State::kDialogue;
  // Queued complete lines are bounded by server.buffer_size too (a pipelining flood).
  size_t limit = static_cast<size_t>(config().smtp.line_length_limit);
  pre_->lines = std::make_unique<protocol::LineReader>(
      limit, std::max<size_t>(1, config().server.buffer_size / limit));
  pre_->dialogue =
      std::make_unique<checks::Dialogue>(server_.dialogue_policy(runtime_), dialogue_client());
  // postscreen_command_time_limit = ${stress?{10}:{300}}s.
  auto time_limit = server_.under_stress()
                        ? std::min(config().smtp.command_time_limit, kStressCommandTime)
                        : config().smtp.command_time_limit;
  pre_->command_deadline = std::make_unique<DeadlineEntry>();
  server_.deadlines(time_limit)
      .add<&Session::command_time_limit_reached>(*pre_->command_deadline, this);
  client_conn_.start_reading();
  // What an ignored early talker already sent is the start of its dialogue.
  std::string early = std::move(held_);
  held_.clear();
  if (!early.empty()) dialogue_input(early);
}

void Session::dialogue_input(std::string_view bytes) {
  size_t taken = pre_->lines->feed(bytes);
  if (taken < bytes.size()) {
    // The reader's queue is full: keep the rest and stop reading until it drains.
    held_.append(bytes.substr(taken));
    client_conn_.stop_reading();
  }
  run_dialogue();
}

void Session::run_dialogue() {
  while (state_ == State::kDialogue && !pre_->sleeping && !pre_->store_wait) {
    // A client that sends commands but does not read its replies: stop taking commands
    // until the replies already queued have gone out (on_drained resumes).
    if (client_conn_.queued() > config().server.buffer_size) {
      client_conn_.stop_reading();
      return;
    }
    auto line = pre_->lines->next();
    if (!line) break;
    std::string early = pre_->lines->peek(checks::PregreetTest::kSampleBytes);
    if (early.empty()) early = held_.substr(0, checks::PregreetTest::kSampleBytes);
    apply_step(pre_->dialogue->on_line(*line, early));
    if (state_ == State::kDialogue) maybe_start_spf();
    if (!held_.empty() && state_ == State::kDialogue) {
      std::string rest = std::move(held_);
      held_.clear();
      size_t taken = pre_->lines->feed(rest);
      held_ = rest.substr(taken);
      if (held_.empty() && !pre_->sleeping) client_conn_.start_reading();
    }
  }
}

void Session::apply(const checks::Finding& f) {
  using Then = checks::Finding::Then;
  report(f, client_labels());
  if (!f.strike.empty()) strike(f.strike);
  switch (f.then) {
    case Then::kContinue:
    case Then::kAllowlist:  // the caller skips what is left
      return;
    case Then::kEnforce:
      if (pre_->dnsbl_enforce_reply.empty()) pre_->dnsbl_enforce_reply = f.reply;
      return;
    case Then::kRejectRcpt:
      apply_step(pre_->dialogue->reject_held_rcpt(f.reply, f.test));
      return;
    case Then::kDeferRcpt:
      apply_step(pre_->dialogue->refuse_handoff(f.reply));
      return;
    case Then::kReplyAndClose:
      reply_and_close(f.reply + "\r\n", f.test);
      return;
    case Then::kClose:
      client_conn_.close();  // not a byte read, not a byte written
      finish(f.test);
      return;
    case Then::kReset:
      client_conn_.reset();
      finish(f.test);
      return;
    case Then::kBanAndClose: {
      // The reply waits for the ban to be stored: the client's next connection, to any
      // listener or any host on the same Redis, finds it.
      pre_->store_wait = true;
      client_conn_.stop_reading();
      stop_command_timer();
      server_.bans().ban(client_.address, f.test, f.ban, std::chrono::seconds(0),
                         [this, alive = alive_, reply = f.reply + "\r\n", outcome = f.test](
                             StoreStatus, std::chrono::seconds) {
                           if (!*alive || state_ == State::kDone) return;
                           reply_and_close(reply, outcome);
                         });
      return;
    }
  }
}

void Session::apply_step(checks::Step step) {
  for (const auto& finding : step.findings) {
    apply(finding);
    if (state_ == State::kDone) return;  // the finding ended the session
  }
  if (step.delay.count() > 0) {
    // Postfix's error sleep, as a timer: the session costs memory only while it waits.
    step.findings.clear();
    auto delay = step.delay;
    step.delay = Ms{0};
    pre_->sleeping = std::make_unique<checks::Step>(std::move(step));
    client_conn_.stop_reading();
    arm_timer(delay);
    return;
  }
  client_write(step.reply);
  switch (step.then) {
    case checks::Step::Then::kContinue:
      return;
    case checks::Step::Then::kHandoff:
      rcpt_ready();
      return;
    case checks::Step::Then::kStartTls:
      start_tls();
      return;
  }
}

void Session::rcpt_passed() {
  if (!pre_->dialogue->rcpt_line().empty() &&
      runtime_->trap_recipients.is_trap(pre_->dialogue->recipient().address)) {
    apply(checks::trap_finding(client_.address, who(), pre_->dialogue->sender().address,
                               pre_->dialogue->recipient().address, false));
    return;
  }
  if (config().greylist.enabled && !pre_->dialogue->rcpt_line().empty()) {
    greylist_rcpt();
    return;
  }
  pass_new("");
  stop_command_timer();
  start_handoff();
}

bool Session::check_domains() {
  Resolver* resolver = server_.resolver();
  if (!runtime_->plan.needs(checks::kNeedDomainDns) || !resolver) return false;
  // Postfix's reject_rhsbl_reverse_client: the PTR name, verified or not.
  std::string reverse;
  if (dns_ && dns_->snapshot().ptr == PtrState::kFound) reverse = dns_->snapshot().ptr_name;
  DomainLookupPlan plan = domain_lookup_plan(*runtime_, pre_->dialogue->helo(),
                                             pre_->dialogue->sender().address, reverse);
  if (plan.empty()) return false;
  pre_->store_wait = true;  // commands behind the RCPT wait for its answer
  client_conn_.stop_reading();
  checks::DomainNames names{client_.address.to_string(), reverse, pre_->dialogue->helo(),
                            pre_->dialogue->sender().address};
  auto alive = alive_;
  pre_->domain_dns = std::make_unique<DomainLookups>(
      *resolver, std::move(plan), [this, alive, names](const checks::DomainFacts& facts) {
        if (!*alive || state_ != State::kDialogue) return;
        pre_->store_wait = false;
        pre_->helo_exists = facts.helo;
        auto findings = checks::domain_findings(facts, config().helo.reject_unknown, names,
                                                config().dnsbl.reply_map, who());
        for (const auto& finding : findings) apply(finding);
        if (findings.back().then == checks::Finding::Then::kContinue) {
          rcpt_passed();
        } else {
          resume_dialogue();
        }
        // Not reset here: this object is running the callback.
      });
  return true;
}

void Session::hold(std::string_view bytes) {
  held_.append(bytes);
  if (held_.size() >= config().server.buffer_size) client_conn_.stop_reading();
}

void Session::on_read(Conn&, std::string_view bytes) {
  if (tls_) {
    client_ciphertext(bytes);
  } else {
    on_client_bytes(bytes);
  }
}

void Session::on_client_bytes(std::string_view bytes) {
  switch (state_) {
    case State::kProxyHeader: {
      held_.append(bytes);
      auto parsed = protocol::parse_proxy_header(held_);
      if (parsed.status == protocol::ProxyParse::Status::kNeedMore) return;
      if (parsed.status == protocol::ProxyParse::Status::kInvalid) {
        Log::event(LogLevel::kWarning, "PROXY",
                   "invalid PROXY header from upstream " + who() + ": " +
                       protocol::printable(parsed.error) + "; closing",
                   {{"upstream", client_labels()}});
        metrics().inc("mxscreen_proxy_header_errors_total");
        client_conn_.close();
        finish("proxy_header_invalid");
        return;
      }
      if (!parsed.header.local) {
        client_ = parsed.header.source;
        local_ = parsed.header.destination;
      }
      // Bytes after the header are the client's own SMTP talk: they stay held (never parsed
      // as a header again) and count as early talk when the greet starts, or go to Postfix
      // after its banner when the client is handed off at connect.
      held_.erase(0, parsed.consumed);
      client_conn_.stop_reading();
      stop_timer();
      connect_decision();
      return;
    }
    case State::kConnect:
      hold(bytes);
      return;
    case State::kGreet: {
      bool first = !pre_->pregreet->hit();
      pre_->pregreet->on_client_bytes(std::chrono::steady_clock::now(), bytes);
      // The first early bytes are the finding (greet.action = drop ends the session at once).
      if (first) apply(checks::pregreet_hit(*pre_->pregreet, who()));
      if (state_ == State::kGreet) hold(bytes);
      return;
    }
    case State::kDialogue:
      if (pre_->sleeping || pre_->store_wait) {
        hold(bytes);
        return;
      }
      dialogue_input(bytes);
      return;
    case State::kHandoff:
      if (spliced()) {
        handoff_->client_bytes(bytes);
        return;
      }
      hold(bytes);
      return;
    case State::kDone:
      return;
  }
}

void Session::on_eof(Conn&) {
  if (spliced()) {
    handoff_->client_eof();
    return;
  }
  if (state_ == State::kGreet || state_ == State::kDialogue) {
    Log::event(LogLevel::kInfo, "HANGUP",
               "HANGUP after " + format_seconds(seconds_since(started_)) + " from " + who() +
                   " in tests " + (state_ == State::kGreet ? "before" : "after") +
                   " SMTP handshake",
               {{"client", client_labels()}});
    if (state_ == State::kGreet) metrics().inc("mxscreen_pregreet_total", "verdict=\"hangup\"");
  }
  client_conn_.close();
  finish(state_ == State::kGreet || state_ == State::kDialogue ? "hangup" : "client_gone");
}

void Session::on_error(Conn&, int) {
  client_conn_.close();
  // A reset after the backend closed (a client that drops the socket on 221 with our
  // close_notify unread) ends a complete session, not a broken one.
  finish(!spliced() ? "client_error" : handoff_->backend_eof() ? "spliced" : "client_reset");
}

void Session::on_drained(Conn&) {
  if (state_ == State::kDialogue && !pre_->sleeping && !tls_pending()) {
    client_conn_.start_reading();
    run_dialogue();
    return;
  }
  if (spliced()) handoff_->client_drained();
}

void Session::reply_and_close(const std::string& reply, const std::string& outcome) {
  client_write(reply);
  client_conn_.close_after_flush();
  finish(outcome);
}

void Session::shutdown_if_unspliced() {
  if (state_ == State::kDone || spliced()) return;
  if (handoff_) handoff_->close_backend();
  reply_and_close(std::string(checks::replies::kShuttingDown) + "\r\n", "shutdown");
}

void Session::abort() {
  if (state_ == State::kDone) return;
  client_conn_.close();
  finish("drain_timeout");
}

void Session::finish(const std::string& outcome) {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  stop_timer();
  stop_command_timer();
  // Leaves the backend queue, stops splice(2), closes the backend once its queue is out.
  if (handoff_) handoff_->end();
  if (client_conn_.open()) {
    client_close_notify();
    client_conn_.close_after_flush();
  }
  uint64_t bytes_in = handoff_ ? handoff_->bytes_in() : 0;
  uint64_t bytes_out = handoff_ ? handoff_->bytes_out() : 0;
  Log::event(LogLevel::kInfo, "DISCONNECT",
             "DISCONNECT " + who() + " outcome=" + outcome +
                 " duration=" + format_seconds(seconds_since(started_)) +
                 "s in=" + std::to_string(bytes_in) + " out=" + std::to_string(bytes_out),
             {{"client", client_labels()}, {"outcome", outcome}});
  metrics().inc("mxscreen_sessions_total", "outcome=\"" + outcome + "\"");
  if (bytes_in || bytes_out) {
    metrics().inc("mxscreen_spliced_bytes_total", "direction=\"in\"", bytes_in);
    metrics().inc("mxscreen_spliced_bytes_total", "direction=\"out\"", bytes_out);
  }
  server_.session_ended(this);
}

void Session::arm_timer(std::chrono::milliseconds after) {
  if (!pre_->timer) {  // made on first use: a session in its greet wait needs none (wake_at)
    pre_->timer = std::make_unique<Timer>();
    pre_->timer->init<&Session::timer_fired>(server_.loop(), this);
  }
  pre_->timer->start(after);
}

void Session::stop_timer() {
  if (!pre_) return;  // handed off: the Handoff keeps its own timers
  if (pre_->timer) pre_->timer->stop();
  pre_->wake_deadline = 0;
}

void Session::wake(uint64_t deadline) {
  if (!pre_ || pre_->wake_deadline != deadline) return;  // stopped or moved on
  pre_->wake_deadline = 0;
  if (state_ == State::kGreet) timer_fired();
}

void Session::command_time_limit_reached() {
  if (state_ != State::kDialogue) return;
  pre_->sleeping.reset();
  apply_step(pre_->dialogue->on_time_limit());
}

void Session::timer_fired() {
  switch (state_) {
    case State::kProxyHeader:
      Log::event(LogLevel::kWarning, "PROXY",
                 "no PROXY header from upstream " + who() + " in time; closing",
                 {{"upstream", client_labels()}});
      metrics().inc("mxscreen_proxy_header_errors_total");
      client_conn_.close();
      finish("proxy_header_timeout");
      return;
    case State::kConnect:  // no timer runs while the connect decision is made
      return;
    case State::kGreet:
      greet_done();
      return;
    case State::kDialogue: {
      if (tls_ && !tls_->handshake_done()) {
        tls_failed("handshake timeout");
        return;
      }
      if (!pre_->sleeping) return;
      auto step = std::move(*pre_->sleeping);
      pre_->sleeping.reset();
      apply_step(std::move(step));
      resume_dialogue();
      return;
    }
    case State::kHandoff:  // the Handoff keeps its own timeouts
    case State::kDone:
      return;
  }
}

double Session::seconds_since(std::chrono::steady_clock::time_point t) const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace mxscreen::proxy

namespace mxscreen::proxy {

void Session::client_write(std::string_view plaintext) {
  if (!tls_) {
    client_conn_.write(plaintext);
    return;
  }
  std::string out;
  if (tls_->write(plaintext, &out)) client_conn_.write(out);
}

void Session::client_close_notify() {
  // A TLS client told of the end by a bare FIN reports "unexpected eof" and answers with a
  // decode_error alert; close_notify first is the orderly close (RFC 8446 6.1).
  if (!tls_) return;
  std::string out;
  tls_->shutdown(&out);
  if (!out.empty()) client_conn_.write(out);
}

void Session::client_ciphertext(std::string_view bytes) {
  std::string plain;
  std::string out;
  auto result = tls_->feed(bytes, &plain, &out);
  if (!out.empty()) client_conn_.write(out);
  switch (result) {
    case TlsSession::Result::kError:
      if (spliced() && handoff_->backend_eof()) {
        // The backend has said goodbye and we sent close_notify: whatever the client answers
        // now (an alert, a reset) ends a session that is already complete.
        client_conn_.close();
        finish("spliced");
        return;
      }
      tls_failed(tls_->error());
      return;
    case TlsSession::Result::kClosed:
      if (!plain.empty()) on_client_bytes(plain);
      if (state_ != State::kDone) on_eof(client_conn_);
      return;
    case TlsSession::Result::kHandshakeDone:
      if (!spliced()) stop_timer();  // spliced: the Handoff's idle timer runs on
      Log::event(LogLevel::kInfo, "TLS",
                 "Anonymous TLS connection established from " + who() + ": " + tls_->protocol() +
                     " with cipher " + tls_->cipher() + ", client certificate " +
                     (tls_->client_cert_offered() ? "offered" : "none"),
                 {{"client", client_labels()},
                  {"protocol", tls_->protocol()},
                  {"cipher", tls_->cipher()}});
      metrics().inc("mxscreen_tls_handshakes_total",
                    "result=\"ok\",version=\"" + label_value(tls_->protocol()) + "\"");
      break;
    case TlsSession::Result::kOk:
    case TlsSession::Result::kWantMore:
      break;
  }
  if (!plain.empty()) on_client_bytes(plain);
}

void Session::start_tls() {
  // RFC 3207 4.2 / the STARTTLS command injection attack: whatever the client pipelined in
  // the clear behind STARTTLS is discarded, never answered inside TLS.
  std::string injected = pre_->lines->take_unprocessed() + held_;
  held_.clear();
  if (!injected.empty()) {
    Log::event(LogLevel::kWarning, "TLS",
               "discarding " + std::to_string(injected.size()) +
                   " plaintext bytes sent after STARTTLS by " + who() + ": " +
                   protocol::printable(injected),
               {{"client", client_labels()}});
    metrics().inc("mxscreen_tls_injection_discarded_total");
  }
  tls_ = std::make_unique<TlsSession>(runtime_->tls);
  pre_->dialogue->reset_after_starttls();
  arm_timer(config().tls.handshake_timeout);
}

void Session::start_client_tls() { tls_ = std::make_unique<TlsSession>(runtime_->tls); }

void Session::tls_failed(const std::string& reason) {
  Log::event(LogLevel::kInfo, "TLS",
             std::string(tls_->handshake_done() ? "TLS error" : "TLS handshake failed") + " for " +
                 who() + ": " + protocol::printable(reason) + "; closing",
             {{"client", client_labels()}, {"reason", reason}});
  metrics().inc("mxscreen_tls_handshakes_total",
                "result=\"error\",reason=\"" + label_value(reason) + "\"");
  client_conn_.close_after_flush();
  finish("tls_error");
}

// The handoff, from the client's side.

bool Session::refuse_if_backend_full() {
  if (!server_.backend_full()) return false;
  report_backend_busy(config(), "full", false, who(), client_labels());
  reply_and_close(std::string(checks::replies::kAllPortsBusy) + "\r\n", "backend_busy");
  return true;
}

void Session::start_handoff() {
  stop_timer();
  state_ = State::kHandoff;
  // The dialogue's decisions (pass cache, greylisting, SPF, the DNS tests of names) are made:
  // the handoff replays three lines and names the client, nothing more. Freed here, whether the
  // session waits in the queue or not; callbacks that lead here may destroy their own objects.
  Handoff::Replay replay;
  if (pre_->dialogue) {
    replay.esmtp = pre_->dialogue->esmtp();
    replay.helo = pre_->dialogue->helo();
    replay.mail_line = pre_->dialogue->mail_line();
    replay.rcpt_line = pre_->dialogue->rcpt_line();
  }
  auto mode = client_gets_backend_banner_ ? Handoff::Mode::kAllowlisted
              : pre_->dialogue            ? Handoff::Mode::kAfterDialogue
                                          : Handoff::Mode::kAfterGreet;
  HandoffClient& client = *this;
  handoff_ = std::make_unique<Handoff>(client, mode, replay);
  if (dns_ && dns_->done()) release_client_dns();  // else when its last answer is in
  // Lines the dialogue had not answered yet go first in what is replayed after the handoff.
  if (pre_->lines) held_.insert(0, pre_->lines->take_unprocessed());
  // A client handing off costs little more than a held one: the dialogue, its line reader
  // (its queue alone is half a KiB), lookups, SPF run and timers are done with (the Handoff
  // has its own).
  pre_.reset();
  handoff_->start(alive_);
  // Watch the client while it waits for a slot: one that leaves gives its place up at once
  // (what it sends meanwhile is held, bounded by server.buffer_size, and replayed after the
  // handoff).
  if (state_ == State::kHandoff && handoff_->queued() &&
      held_.size() < config().server.buffer_size) {
    client_conn_.start_reading();
  }
}

void Session::release_client_dns() {
  const auto& snap = dns_->snapshot();
  // NAME= only for a hostname that forward-confirms (Postfix's "verified" name).
  if (snap.fcrdns == FcrdnsState::kConfirmed) handoff_->set_verified_name(snap.ptr_name);
  dns_.reset();
}

std::string Session::verified_name() const {
  // NAME= only for a hostname that forward-confirms (Postfix's "verified" name); else
  // [UNAVAILABLE] and Postfix logs unknown[addr], as it does for its own lookups.
  if (dns_) {
    const auto& snap = dns_->snapshot();
    return snap.fcrdns == FcrdnsState::kConfirmed ? snap.ptr_name : std::string();
  }
  return handoff_ ? std::string(handoff_->kept_verified_name()) : std::string();
}

std::string Session::take_client_input() {
  std::string pending = std::move(held_);  // the dialogue's unread lines came first (start_handoff)
  held_.clear();
  held_.shrink_to_fit();
  return pending;
}

}  // namespace mxscreen::proxy
