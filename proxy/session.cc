// proxy/session.cc: see session.h. Reply texts follow postscreen's where it has one.
#include "proxy/session.h"

#include <cstdio>

#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "protocol/xclient.h"
#include "proxy/log.h"

namespace mxscreen::proxy {
namespace {

using Ms = std::chrono::milliseconds;

// How long an upstream balancer may take to send its PROXY header.
constexpr Ms kProxyHeaderTimeout{10000};

const char* role_name(ListenRole role) { return role == ListenRole::kFakeMx ? "fake_mx" : "mx"; }

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", s);
  return buf;
}

}  // namespace

Session::Session(Server& server, const Listener& listener)
    : server_(server),
      listener_(listener),
      runtime_(server.runtime()),
      client_conn_(server.loop(), *this),
      started_(std::chrono::steady_clock::now()) {}

Session::~Session() {
  if (backend_conn_) server_.backend_session(false);
}

bool Session::accept(uv_stream_t* listener_stream) {
  if (client_conn_.init() != 0) return false;
  if (uv_accept(listener_stream, client_conn_.stream()) != 0) return false;
  if (uv_timer_init(server_.loop(), timer_.get()) != 0) return false;
  timer_.initialized();
  timer_->data = this;
  uv_tcp_nodelay(client_conn_.tcp(), 1);
  client_ = tcp_peer(client_conn_.tcp());
  local_ = tcp_local(client_conn_.tcp());
  if (listener_.config.proxy_protocol) {
    state_ = State::kProxyHeader;
    client_conn_.start_reading();
    arm_timer(kProxyHeaderTimeout);
  } else {
    connect_decision();
  }
  return true;
}

void Session::connect_decision() {
  Log::event(LogLevel::kInfo, "CONNECT",
             "CONNECT from " + who() + " to " + local_.log_string(),
             {{"client", client_.address.to_string()},
              {"client_port", std::to_string(client_.port)},
              {"listener", listener_.label}});
  metrics().inc("mxscreen_connections_total", "listener=\"" + label_value(listener_.label) +
                                                  "\",role=\"" + role_name(listener_.config.role) +
                                                  "\"");

  if (server_.active_sessions() > static_cast<size_t>(config().server.max_sessions)) {
    Log::event(LogLevel::kWarning, "NOQUEUE",
               "NOQUEUE: reject: CONNECT from " + who() + ": all server ports busy",
               {{"client", client_.address.to_string()}});
    reply_and_close("421 4.3.2 All server ports are busy\r\n", "busy");
    return;
  }
  auto decision = runtime_->access.decide(client_.address);
  if (decision == checks::AccessDecision::kReject) {
    Log::event(LogLevel::kInfo, "DENYLISTED", "DENYLISTED " + who(),
               {{"client", client_.address.to_string()}});
    reply_and_close("554 5.7.1 Service unavailable; client [" + client_.address.to_string() +
                        "] blocked using access list\r\n",
                    "denylisted");
    return;
  }
  if (listener_.config.role == ListenRole::kFakeMx) {
    bool reset = config().fake_mx.action == FakeMxAction::kReset;
    Log::event(LogLevel::kInfo, "FAKE-MX",
               "FAKE-MX " + who() + " action=" + (reset ? "reset" : "tempfail"),
               {{"client", client_.address.to_string()}, {"action", reset ? "reset" : "tempfail"}});
    metrics().inc("mxscreen_fake_mx_hits_total",
                  std::string("action=\"") + (reset ? "reset" : "tempfail") + "\"");
    if (reset) {
      client_conn_.reset();
      finish("fake_mx");
    } else {
      reply_and_close("421 4.3.2 Service temporarily unavailable\r\n", "fake_mx");
    }
    return;
  }
  if (decision == checks::AccessDecision::kPermit) {
    Log::event(LogLevel::kInfo, "ALLOWLISTED", "ALLOWLISTED " + who(),
               {{"client", client_.address.to_string()}});
    client_gets_backend_banner_ = true;
    client_conn_.start_reading();  // anything early is held and replayed after the banner
    start_handoff();
    return;
  }
  start_greet();
}

void Session::start_greet() {
  state_ = State::kGreet;
  const auto& greet = config().greet;
  client_conn_.write("220-" + runtime_->banner + "\r\n");
  pregreet_.emplace(greet.action, std::chrono::steady_clock::now());
  client_conn_.start_reading();
  arm_timer(greet.wait);
}

void Session::greet_done() {
  auto verdict = pregreet_->verdict();
  if (verdict.outcome == checks::Outcome::kDrop) return;  // already answered
  metrics().inc("mxscreen_pregreet_total",
                std::string("verdict=\"") + (pregreet_->hit() ? "ignore" : "pass") + "\"");
  Log::event(LogLevel::kInfo, "PASS", "PASS NEW " + who(), {{"client", client_.address.to_string()}});
  start_handoff();
}

void Session::client_bytes_while_waiting(std::string_view bytes) {
  held_.append(bytes);
  if (held_.size() >= config().server.buffer_size) client_conn_.stop_reading();
}

void Session::on_read(Conn& conn, std::string_view bytes) {
  if (&conn != &client_conn_) {
    if (state_ == State::kSplice) {
      last_activity_ = uv_now(server_.loop());
      bytes_out_ += bytes.size();
      client_conn_.write(bytes);
      if (client_conn_.queued() > config().server.buffer_size) backend_conn_->stop_reading();
    } else if (state_ == State::kHandoff) {
      backend_reply(bytes);
    }
    return;
  }
  switch (state_) {
    case State::kProxyHeader: {
      held_.append(bytes);
      auto parsed = protocol::parse_proxy_header(held_);
      if (parsed.status == protocol::ProxyParse::Status::kNeedMore) return;
      if (parsed.status == protocol::ProxyParse::Status::kInvalid) {
        Log::event(LogLevel::kWarning, "PROXY",
                   "invalid PROXY header from upstream " + who() + ": " +
                       protocol::printable(parsed.error) + "; closing",
                   {{"upstream", client_.address.to_string()}});
        metrics().inc("mxscreen_proxy_header_errors_total");
        client_conn_.close();
        finish("proxy_header_invalid");
        return;
      }
      if (!parsed.header.local) {
        client_ = parsed.header.source;
        local_ = parsed.header.destination;
      }
      held_.erase(0, parsed.consumed);
      client_conn_.stop_reading();
      uv_timer_stop(timer_.get());
      std::string rest = std::move(held_);
      held_.clear();
      connect_decision();
      // Bytes after the header are the client's own: they count as early talk.
      if (!rest.empty() && state_ != State::kDone) on_read(client_conn_, rest);
      return;
    }
    case State::kGreet: {
      bool first = !pregreet_->hit();
      pregreet_->on_client_bytes(std::chrono::steady_clock::now(), bytes);
      if (first) {
        Log::event(LogLevel::kInfo, "PREGREET",
                   "PREGREET " + std::to_string(bytes.size()) + " after " +
                       format_seconds(pregreet_->after().count() / 1000.0) + " from " + who() +
                       ": " + protocol::printable(pregreet_->sample()),
                   {{"client", client_.address.to_string()}});
      }
      if (pregreet_->verdict().outcome == checks::Outcome::kDrop) {
        metrics().inc("mxscreen_pregreet_total", "verdict=\"drop\"");
        reply_and_close("521 5.5.1 Protocol error\r\n", "pregreet");
        return;
      }
      client_bytes_while_waiting(bytes);
      return;
    }
    case State::kHandoff:
      client_bytes_while_waiting(bytes);
      return;
    case State::kSplice:
      last_activity_ = uv_now(server_.loop());
      bytes_in_ += bytes.size();
      backend_conn_->write(bytes);
      if (backend_conn_->queued() > config().server.buffer_size) client_conn_.stop_reading();
      return;
    case State::kDone:
      return;
  }
}

void Session::on_eof(Conn& conn) {
  if (&conn == &client_conn_) {
    client_eof_ = true;
    if (state_ == State::kSplice) {
      backend_conn_->shutdown_write();
      if (backend_eof_) finish("spliced");
      return;
    }
    if (state_ == State::kGreet) {
      Log::event(LogLevel::kInfo, "HANGUP",
                 "HANGUP after " + format_seconds(seconds_since(started_)) + " from " + who() +
                     " in tests before SMTP handshake",
                 {{"client", client_.address.to_string()}});
      metrics().inc("mxscreen_pregreet_total", "verdict=\"hangup\"");
    }
    client_conn_.close();
    finish(state_ == State::kGreet ? "hangup" : "client_gone");
    return;
  }
  backend_eof_ = true;
  if (state_ == State::kSplice) {
    client_conn_.shutdown_write();
    if (client_eof_) finish("spliced");
    return;
  }
  backend_failed("connection closed by backend during handoff");
}

void Session::on_error(Conn& conn, int status) {
  if (&conn == &client_conn_) {
    client_conn_.close();
    finish(state_ == State::kSplice ? "client_reset" : "client_error");
    return;
  }
  if (state_ == State::kSplice) {
    Log::event(LogLevel::kWarning, "BACKEND",
               "backend " + config().backend.address.to_string() + " error for " + who() +
                   " after handoff: " + uv_error(status) + "; closing both sides",
               {{"client", client_.address.to_string()}});
    finish("backend_error");
    return;
  }
  backend_failed(uv_error(status));
}

void Session::on_drained(Conn& conn) {
  if (state_ != State::kSplice) return;
  // The side that fed this queue may read again.
  if (&conn == &client_conn_) {
    if (!backend_eof_) backend_conn_->start_reading();
  } else if (!client_eof_) {
    client_conn_.start_reading();
  }
}

void Session::start_handoff() {
  state_ = State::kHandoff;
  step_ = HandoffStep::kConnecting;
  const auto& backend = config().backend;
  if (server_.backend_sessions() >= static_cast<size_t>(backend.max_sessions)) {
    // Postfix is never flooded: the client retries later, as from a busy postscreen.
    Log::event(LogLevel::kWarning, "LIMIT",
               "NOQUEUE: reject: CONNECT from " + who() + ": backend.max_sessions (" +
                   std::to_string(backend.max_sessions) + ") reached",
               {{"client", client_.address.to_string()}});
    metrics().inc("mxscreen_limit_hits_total", "limit=\"backend_max_sessions\"");
    reply_and_close("421 4.3.2 All server ports are busy\r\n", "backend_busy");
    return;
  }
  backend_conn_ = std::make_unique<Conn>(server_.loop(), *this);
  server_.backend_session(true);
  int rc = backend_conn_->init();
  if (rc == 0) rc = backend_conn_->connect(backend.address);
  if (rc != 0) {
    backend_failed(uv_error(rc));
    return;
  }
  arm_timer(backend.connect_timeout);
}

void Session::on_connect(Conn&, int status) {
  if (state_ != State::kHandoff) return;
  if (status != 0) {
    backend_failed(uv_error(status));
    return;
  }
  uv_tcp_nodelay(backend_conn_->tcp(), 1);
  const auto& backend = config().backend;
  if (backend.handoff == HandoffMode::kProxyV1) {
    backend_conn_->write(protocol::encode_proxy_v1(client_, local_));
  } else if (backend.handoff == HandoffMode::kProxyV2) {
    backend_conn_->write(protocol::encode_proxy_v2(client_, local_));
  }
  step_ = HandoffStep::kBanner;
  backend_reader_.reset();
  backend_conn_->start_reading();
  arm_timer(backend.banner_timeout);
}

void Session::backend_reply(std::string_view bytes) {
  while (state_ == State::kHandoff && !bytes.empty()) {
    size_t consumed = 0;
    auto status = backend_reader_.feed(bytes, &consumed);
    if (status == protocol::ReplyReader::Status::kNeedMore) return;  // kept by the reader
    if (status == protocol::ReplyReader::Status::kInvalid) {
      backend_failed("malformed reply from backend");
      return;
    }
    bytes.remove_prefix(consumed);
    std::string raw = protocol::format_multiline_reply(backend_reader_.code(), "",
                                                       backend_reader_.lines());
    backend_step_done(std::move(raw));
  }
  // Whatever the backend sent after the reply that completed the handoff is the client's.
  if (state_ == State::kSplice && !bytes.empty()) on_read(*backend_conn_, bytes);
}

void Session::backend_step_done(std::string raw_reply) {
  int code = backend_reader_.code();
  std::string first_line = backend_reader_.lines().empty() ? "" : backend_reader_.lines()[0];
  const auto& backend = config().backend;
  switch (step_) {
    case HandoffStep::kConnecting:
      return;
    case HandoffStep::kBanner:
      if (code != 220) {
        backend_failed("backend banner " + std::to_string(code) + " " + protocol::printable(first_line));
        return;
      }
      if (backend.handoff == HandoffMode::kXclient) {
        step_ = HandoffStep::kEhlo;
        backend_reader_.reset();
        backend_conn_->write("EHLO " + config().server.hostname + "\r\n");
        return;
      }
      start_splice(raw_reply);
      return;
    case HandoffStep::kEhlo: {
      bool offers_xclient = false;
      for (const auto& line : backend_reader_.lines()) {
        if (line.size() >= 7 && (line.compare(0, 7, "XCLIENT") == 0 || line.compare(0, 7, "xclient") == 0)) {
          offers_xclient = true;
        }
      }
      if (code != 250 || !offers_xclient) {
        backend_failed("backend does not offer XCLIENT to us (check smtpd_authorized_xclient_hosts)");
        return;
      }
      step_ = HandoffStep::kXclient;
      backend_reader_.reset();
      protocol::XclientAttrs attrs;
      attrs.client = client_;
      backend_conn_->write(protocol::encode_xclient(attrs));
      return;
    }
    case HandoffStep::kXclient:
      if (code != 220) {
        backend_failed("XCLIENT refused: " + std::to_string(code) + " " + protocol::printable(first_line));
        return;
      }
      start_splice(raw_reply);
      return;
  }
}

void Session::start_splice(std::string_view backend_banner) {
  uv_timer_stop(timer_.get());
  state_ = State::kSplice;
  metrics().inc("mxscreen_handoffs_total",
                std::string("mode=\"") +
                    (client_gets_backend_banner_ ? "allowlisted" : "after_greet") + "\"");
  // The client already has our "220-" line unless it was allowlisted at connect.
  if (client_gets_backend_banner_) {
    client_conn_.write(backend_banner);
  } else {
    client_conn_.write("220 " + runtime_->banner + "\r\n");
  }
  if (!held_.empty()) {
    bytes_in_ += held_.size();
    backend_conn_->write(held_);
    held_.clear();
    held_.shrink_to_fit();
  }
  last_activity_ = uv_now(server_.loop());
  client_conn_.start_reading();
  backend_conn_->start_reading();
  arm_timer(config().smtp.idle_timeout);
}

void Session::backend_failed(const std::string& reason) {
  const auto& backend = config().backend;
  Log::event(LogLevel::kWarning, "BACKEND",
             "backend " + backend.address.to_string() + " unavailable: " + reason + "; 421 to " +
                 who(),
             {{"client", client_.address.to_string()}, {"reason", reason}});
  const char* kind = step_ == HandoffStep::kConnecting ? "connect"
                     : step_ == HandoffStep::kBanner   ? "banner"
                                                       : "xclient";
  metrics().inc("mxscreen_backend_failures_total", std::string("step=\"") + kind + "\"");
  if (backend_conn_) backend_conn_->close();
  reply_and_close("421 4.3.2 Service temporarily unavailable\r\n", "backend_failure");
}

void Session::reply_and_close(const std::string& reply, const std::string& outcome) {
  client_conn_.write(reply);
  client_conn_.close_after_flush();
  finish(outcome);
}

void Session::shutdown_if_unspliced() {
  if (state_ == State::kSplice || state_ == State::kDone) return;
  if (backend_conn_) backend_conn_->close();
  reply_and_close("421 4.3.2 Service shutting down\r\n", "shutdown");
}

void Session::abort() {
  if (state_ == State::kDone) return;
  client_conn_.close();
  finish("drain_timeout");
}

void Session::finish(const std::string& outcome) {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  uv_timer_stop(timer_.get());
  if (backend_conn_) backend_conn_->close_after_flush();
  if (client_conn_.open()) client_conn_.close_after_flush();
  Log::event(LogLevel::kInfo, "DISCONNECT",
             "DISCONNECT " + who() + " outcome=" + outcome + " duration=" +
                 format_seconds(seconds_since(started_)) + "s in=" + std::to_string(bytes_in_) +
                 " out=" + std::to_string(bytes_out_),
             {{"client", client_.address.to_string()}, {"outcome", outcome}});
  metrics().inc("mxscreen_sessions_total", "outcome=\"" + outcome + "\"");
  if (bytes_in_ || bytes_out_) {
    metrics().inc("mxscreen_spliced_bytes_total", "direction=\"in\"", bytes_in_);
    metrics().inc("mxscreen_spliced_bytes_total", "direction=\"out\"", bytes_out_);
  }
  server_.session_ended(this);
}

void Session::arm_timer(std::chrono::milliseconds after) {
  uv_timer_start(timer_.get(), on_timer, static_cast<uint64_t>(after.count()), 0);
}

void Session::on_timer(uv_timer_t* timer) {
  if (auto* self = static_cast<Session*>(timer->data)) self->timer_fired();
}

void Session::timer_fired() {
  switch (state_) {
    case State::kProxyHeader:
      Log::event(LogLevel::kWarning, "PROXY",
                 "no PROXY header from upstream " + who() + " in time; closing",
                 {{"upstream", client_.address.to_string()}});
      metrics().inc("mxscreen_proxy_header_errors_total");
      client_conn_.close();
      finish("proxy_header_timeout");
      return;
    case State::kGreet:
      greet_done();
      return;
    case State::kHandoff:
      backend_failed(step_ == HandoffStep::kConnecting ? "connect timeout" : "reply timeout");
      return;
    case State::kSplice: {
      uint64_t idle = static_cast<uint64_t>(config().smtp.idle_timeout.count());
      uint64_t quiet = uv_now(server_.loop()) - last_activity_;
      if (quiet >= idle) {
        Log::event(LogLevel::kInfo, "IDLE", "idle timeout after handoff for " + who(),
                   {{"client", client_.address.to_string()}});
        client_conn_.close();
        finish("idle_timeout");
        return;
      }
      arm_timer(std::chrono::milliseconds(idle - quiet));
      return;
    }
    case State::kDone:
      return;
  }
}

double Session::seconds_since(std::chrono::steady_clock::time_point t) const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace mxscreen::proxy
