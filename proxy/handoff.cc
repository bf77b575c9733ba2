// proxy/handoff.cc: the backend half of a session (DESIGN.md steps 5-6): connect, pass the
// client's identity (PROXY header first, or XCLIENT after the backend's EHLO), swallow the
// backend's banner, replay what the pre-dialogue accepted (EHLO, MAIL, the held RCPT), give
// the client the backend's own answer to that RCPT, then splice bytes both ways.
#include <strings.h>

#include <algorithm>
#include <cstring>

#include "checks/replies.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "protocol/xclient.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace mxscreen::proxy {
namespace {

bool positive(int code) { return code >= 200 && code < 400; }

bool offers(const std::vector<std::string>& ehlo_lines, const char* keyword) {
  size_t n = strlen(keyword);
  for (const auto& line : ehlo_lines) {
    if (line.size() >= n && strncasecmp(line.c_str(), keyword, n) == 0 &&
        (line.size() == n || line[n] == ' ')) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool Session::refuse_if_backend_full() {
  if (!server_.backend_full()) return false;
  refuse_backend_busy("full");
  return true;
}

void Session::refuse_backend_busy(const std::string& why) {
  const auto& backend = config().backend;
  // Postfix is never flooded: the client retries later, as from a busy postscreen. Named as
  // the command whose reply this is: the held RCPT, or the connection (no reply of ours yet).
  bool rcpt = handoff_ && handoff_->rcpt_size != 0;
  std::string detail =
      why == "full"
          ? "backend queue full: backend.max_sessions (" + std::to_string(backend.max_sessions) +
                ") reached, backend.queue_max (" + std::to_string(backend.queue_max) + ") waiting"
          : "backend queue timeout after " + std::to_string(backend.queue_timeout.count() / 1000) +
                "s (backend.queue_timeout)";
  Log::event(LogLevel::kWarning, "NOQUEUE",
             std::string("NOQUEUE: reject: ") + (rcpt ? "RCPT" : "CONNECT") + " from " + who() +
                 ": 421 4.3.2 " + detail,
             {{"client", client_labels()}, {"reason", "backend_queue_" + why}});
  if (why == "full") metrics().inc("mxscreen_limit_hits_total", "limit=\"backend_max_sessions\"");
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"" + why + "\"");
  reply_and_close(std::string(checks::replies::kAllPortsBusy) + "\r\n", "backend_busy");
}

void Session::start_handoff() {
  stop_timer();
  state_ = State::kHandoff;
  step_ = Step::kQueued;
  take_handoff_facts();
  // Slots may have filled while this client was screened: wait for one, first come first
  // served, across every worker.
  switch (server_.backend_slot(this, alive_, &queue_ticket_)) {
    case BackendSlots::Result::kGranted:
      connect_backend();
      return;
    case BackendSlots::Result::kFull:
      refuse_backend_busy("full");
      return;
    case BackendSlots::Result::kQueued:
      break;
  }
  const auto& backend = config().backend;
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"queued\"");
  Log::event(LogLevel::kInfo, "QUEUE",
             "QUEUE " + who() + " waits for a backend slot: backend.max_sessions (" +
                 std::to_string(backend.max_sessions) + ") busy, " +
                 std::to_string(server_.backend_queued()) + " waiting",
             {{"client", client_labels()}});
  // The server's wake timer, not one of our own: a queued session costs what a held one does.
  queued_at_ = uv_now(server_.loop());
  wake_deadline_ =
      queued_at_ + static_cast<uint64_t>(std::max<int64_t>(1, backend.queue_timeout.count()));
  server_.wake_at(this, alive_, wake_deadline_);
  // A queued client should cost what a held one does: the dialogue's line reader (its queue
  // alone is half a KiB) and timers are done with (connect_backend makes timer_ again); lines
  // it had not answered yet go first in what is replayed after the handoff.
  if (lines_) {
    held_.insert(0, lines_->take_unprocessed());
    lines_.reset();
  }
  command_timer_.reset();
  timer_.reset();
  // Watch the client while it waits: one that leaves gives its place up at once (what it
  // sends meanwhile is held, bounded by server.buffer_size, and replayed after the handoff).
  if (held_.size() < config().server.buffer_size) client_conn_.start_reading();
}

void Session::take_handoff_facts() {
  // The dialogue's decisions (pass cache, greylisting, SPF, the DNS tests of names) are made:
  // the handoff replays three lines and names the client, nothing more. Freed here, whether the
  // session waits in the queue or not; callbacks that lead here may destroy their own objects.
  if (dialogue_ || dns_) handoff_ = std::make_unique<HandoffFacts>();
  if (dialogue_) {
    handoff_->after_dialogue = true;
    handoff_->esmtp = dialogue_->esmtp();
    handoff_->helo_size = static_cast<uint32_t>(dialogue_->helo().size());
    handoff_->mail_size = static_cast<uint32_t>(dialogue_->mail_line().size());
    handoff_->rcpt_size = static_cast<uint32_t>(dialogue_->rcpt_line().size());
    handoff_->text = dialogue_->helo() + dialogue_->mail_line() + dialogue_->rcpt_line();
    dialogue_.reset();
  }
  if (dns_ && dns_->done()) release_client_dns();  // else when its last answer is in
  domain_dns_.reset();
  spf_.reset();
  std::string().swap(dnsbl_enforce_reply_);
  pregreet_.reset();
}

void Session::release_client_dns() {
  const auto& snap = dns_->snapshot();
  // NAME= only for a hostname that forward-confirms (Postfix's "verified" name).
  if (snap.fcrdns == FcrdnsState::kConfirmed) handoff_->text += snap.ptr_name;
  dns_.reset();
}

bool Session::backend_slot_granted(uint64_t ticket) {
  if (state_ != State::kHandoff || step_ != Step::kQueued || ticket != queue_ticket_) {
    return false;
  }
  queue_ticket_ = 0;
  wake_deadline_ = 0;
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"served\"");
  metrics().observe("mxscreen_backend_queue_wait_seconds", "",
                    static_cast<double>(uv_now(server_.loop()) - queued_at_) / 1000.0);
  connect_backend();
  return true;
}

void Session::queue_timed_out() {
  // False: the slot is already on its way (another worker freed it): take it when it comes.
  if (!server_.backend_queue_leave(queue_ticket_)) return;
  queue_ticket_ = 0;
  refuse_backend_busy("timeout");
}

void Session::connect_backend() {
  step_ = Step::kConnecting;
  const auto& backend = config().backend;
  backend_reader_ = std::make_unique<protocol::ReplyReader>();
  // From here the slot is released when the session dies (~Session, backend_conn_ set).
  backend_conn_ = std::make_unique<Conn>(server_.loop(), *this);
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
  step_ = Step::kBanner;
  backend_reader_->reset();
  backend_conn_->start_reading();
  arm_timer(backend.banner_timeout);
}

void Session::backend_reply(std::string_view bytes) {
  while (state_ == State::kHandoff && !bytes.empty()) {
    size_t consumed = 0;
    auto status = backend_reader_->feed(bytes, &consumed);
    if (status == protocol::ReplyReader::Status::kNeedMore) return;  // kept by the reader
    if (status == protocol::ReplyReader::Status::kInvalid) {
      backend_failed("malformed reply from backend");
      return;
    }
    bytes.remove_prefix(consumed);
    backend_step_done();
  }
  // Whatever the backend sent after the reply that completed the handoff is the client's.
  if (state_ == State::kSplice && !bytes.empty()) on_read(*backend_conn_, bytes);
}

void Session::send_backend_step(Step step, std::string_view line) {
  step_ = step;
  backend_reader_->reset();
  backend_conn_->write(std::string(line) + "\r\n");
}

void Session::backend_step_done() {
  int code = backend_reader_->code();
  std::string raw = protocol::format_multiline_reply(code, "", backend_reader_->lines());
  std::string first = backend_reader_->lines().empty() ? "" : backend_reader_->lines()[0];
  const auto& backend = config().backend;
  bool dialogue = handoff_ && handoff_->helo_size != 0;
  bool rcpt_held = handoff_ && handoff_->rcpt_size != 0;

  switch (step_) {
    case Step::kQueued:  // no backend connection yet
    case Step::kConnecting:
      return;
    case Step::kBanner:
      if (code != 220) {
        backend_failed("banner " + std::to_string(code) + " " + protocol::printable(first));
        return;
      }
      if (backend.handoff == HandoffMode::kXclient) {
        send_backend_step(Step::kXclientEhlo, "EHLO " + config().server.hostname);
        return;
      }
      break;
    case Step::kXclientEhlo: {
      backend_chunking_ = offers(backend_reader_->lines(), "CHUNKING");
      if (code != 250 || !offers(backend_reader_->lines(), "XCLIENT")) {
        backend_failed("backend does not offer XCLIENT to us (smtpd_authorized_xclient_hosts)");
        return;
      }
      protocol::XclientAttrs attrs;
      attrs.client = client_;
      // NAME= only for a hostname that forward-confirms (Postfix's "verified" name); else
      // [UNAVAILABLE] and Postfix logs unknown[addr], as it does for its own lookups.
      if (dns_ && dns_->snapshot().fcrdns == FcrdnsState::kConfirmed) {
        attrs.name = dns_->snapshot().ptr_name;
      } else if (!dns_ && handoff_) {
        attrs.name = handoff_->verified_name();
      }
      if (dialogue) {
        attrs.helo = handoff_->helo();
        attrs.proto = handoff_->esmtp ? "ESMTP" : "SMTP";
      }
      step_ = Step::kXclient;
      backend_reader_->reset();
      backend_conn_->write(protocol::encode_xclient(attrs));
      return;
    }
    case Step::kXclient:
      if (code != 220) {
        backend_failed("XCLIENT refused: " + std::to_string(code) + " " +
                       protocol::printable(first));
        return;
      }
      break;
    case Step::kHelo:
      if (handoff_->esmtp)
        backend_chunking_ = code == 250 && offers(backend_reader_->lines(), "CHUNKING");
      if (!positive(code) || handoff_->mail_size == 0) {
        // After-EHLO handoff: the client has our EHLO reply. A refusal at RCPT time goes to
        // the client as the answer to its RCPT; nothing refused is reported as accepted.
        start_splice(rcpt_held && !positive(code) ? raw : "");
        return;
      }
      send_backend_step(Step::kMail, handoff_->mail_line());
      return;
    case Step::kMail:
      if (!positive(code) || !rcpt_held) {
        start_splice(rcpt_held ? raw : "");
        return;
      }
      send_backend_step(Step::kRcpt, handoff_->rcpt_line());
      return;
    case Step::kRcpt:
      start_splice(raw);
      return;
  }
  // The backend greeted us (after the identity). Replay the dialogue, or splice now.
  if (dialogue) {
    send_backend_step(Step::kHelo,
                      (handoff_->esmtp ? "EHLO " : "HELO ") + std::string(handoff_->helo()));
    return;
  }
  start_splice(client_gets_backend_banner_ ? raw
                                           : checks::replies::greeting(runtime_->banner) + "\r\n");
}

void Session::start_splice(const std::string& to_client) {
  stop_timer();
  state_ = State::kSplice;
  metrics().inc("mxscreen_handoffs_total",
                std::string("mode=\"") +
                    (client_gets_backend_banner_            ? "allowlisted"
                     : handoff_ && handoff_->after_dialogue ? "after_dialogue"
                                                            : "after_greet") +
                    "\"");
  bytes_out_ += to_client.size();
  client_write(to_client);
  if (config().backend.handoff == HandoffMode::kXclient || tls_) {
    // Postfix believes XCLIENT from mxscreen's address at any time outside a transaction
    // (XCLIENT_README): from here on the client's commands are read, its XCLIENT/XFORWARD
    // answered by mxscreen and never forwarded (issue 13). Inside mxscreen's TLS the backend's
    // own STARTTLS (smtpd_tls_security_level = may, for the sessions spliced at connect) is
    // neither offered nor relayed: it would start a second TLS inside ours (issue 14).
    protocol::CommandStream::Options options;
    options.line_limit =
        std::max<size_t>(static_cast<size_t>(config().smtp.line_length_limit), 512);
    options.chunking = backend_chunking_;
    options.offer_starttls = runtime_->tls != nullptr && !tls_;
    commands_ = std::make_unique<protocol::CommandStream>(options);
  }
  // Client input not yet answered goes to the backend in the order it came: lines still in
  // the dialogue's reader first, then what arrived during the handoff.
  std::string pending = lines_ ? lines_->take_unprocessed() : std::string();
  pending += held_;
  held_.clear();
  held_.shrink_to_fit();
  lines_.reset();
  if (!pending.empty()) {
    bytes_in_ += pending.size();
    commands_from_client(pending);
  }
  last_activity_ = uv_now(server_.loop());
  client_conn_.start_reading();
  backend_conn_->start_reading();
  arm_timer(config().smtp.idle_timeout);
  try_kernel_splice();
}

void Session::try_kernel_splice() {
  // Only bytes nobody reads (no TLS, no XCLIENT command reading), only from a clean start:
  // both write queues empty (what libuv still holds must not be overtaken) and both sides open.
  if (kernel_splice_tried_ || state_ != State::kSplice || !config().server.kernel_splice || tls_ ||
      commands_ || client_eof_ || backend_eof_ || client_conn_.queued() != 0 ||
      backend_conn_->queued() != 0) {
    return;
  }
  kernel_splice_tried_ = true;
  if (!server_.take_kernel_splice_files()) {
    // The descriptors are there for new clients first: copy this one.
    metrics().inc("mxscreen_kernel_splice_total", "result=\"no_files\"");
    return;
  }
  kernel_splice_files_ = true;
  client_conn_.stop_reading();
  backend_conn_->stop_reading();
  int status = 0;
  kernel_splice_ = KernelSplice::start(server_.loop(), client_conn_.tcp(), backend_conn_->tcp(),
                                       *this, {&bytes_in_, &bytes_out_, &last_activity_}, &status);
  if (kernel_splice_) {
    metrics().inc("mxscreen_kernel_splice_total", "result=\"spliced\"");
    return;
  }
  kernel_splice_refused(status);
}

void Session::kernel_splice_refused(int status) {
  // No pipe or descriptor to be had (EMFILE), or a kernel without splice(2) for these
  // sockets: the copy path carries on, nothing was moved yet.
  metrics().inc("mxscreen_kernel_splice_total", "result=\"fallback\"");
  Log::event(LogLevel::kInfo, "SPLICE",
             "splice(2) unavailable for " + who() + ": " + uv_error(status) + "; copying",
             {{"client", client_labels()}});
  kernel_splice_.reset();
  if (kernel_splice_files_) server_.give_back_kernel_splice_files();
  kernel_splice_files_ = false;
  client_conn_.start_reading();
  backend_conn_->start_reading();
}

void Session::kernel_splice_eof(bool client_side) {
  // As on_eof on the copy path: the FIN went on; the session ends when both sides are done.
  (client_side ? client_eof_ : backend_eof_) = true;
  if (client_eof_ && backend_eof_) finish("spliced");
}

void Session::kernel_splice_error(bool client_side, int status) {
  on_error(client_side ? client_conn_ : *backend_conn_, status);
}

void Session::splice_from(Conn& from, Conn& to, std::string_view bytes, uint64_t* counter) {
  last_activity_ = uv_now(server_.loop());
  *counter += bytes.size();
  if (&to == &client_conn_) {
    replies_from_backend(bytes);
  } else {
    commands_from_client(bytes);
  }
  if (state_ != State::kSplice) return;
  // Back-pressure: stop reading this side until the other side's queue has drained.
  if (to.queued() > config().server.buffer_size) from.stop_reading();
}

void Session::commands_from_client(std::string_view bytes) {
  if (!commands_) {
    backend_conn_->write(bytes);
    return;
  }
  if (commands_held_.empty()) {
    size_t used = run_commands(bytes);
    bytes.remove_prefix(used);
  }
  commands_held_.append(bytes);  // behind what already waits
  if (commands_held_.size() >= config().server.buffer_size) client_conn_.stop_reading();
}

void Session::replies_from_backend(std::string_view bytes) {
  if (!commands_) {
    client_write(bytes);
    return;
  }
  std::string out;
  if (commands_->backend_bytes(bytes, &out) != protocol::CommandStream::ReplyStatus::kOk) {
    Log::event(LogLevel::kWarning, "BACKEND",
               "backend " + config().backend.address.to_string() + " sent a reply over " +
                   std::to_string(protocol::CommandStream::kMaxReplyBytes) + " bytes to " + who() +
                   " after handoff; closing both sides",
               {{"client", client_labels()}});
    finish("backend_error");
    return;
  }
  client_write(out);
  if (!commands_held_.empty()) resume_commands();
}

size_t Session::run_commands(std::string_view input) {
  using Kind = protocol::CommandStream::Action::Kind;
  size_t used = 0;
  while (state_ == State::kSplice) {
    auto action = commands_->next(input.substr(used));
    used += action.consumed;
    switch (action.kind) {
      case Kind::kForward:
        backend_conn_->write(action.forward);
        break;
      case Kind::kAnswer:
        command_refused(action);
        bytes_out_ += action.reply.size();
        client_write(action.reply);
        break;
      case Kind::kStartTls: {
        bytes_out_ += action.reply.size();
        client_write(action.reply);
        // RFC 3207 4.2: plain text pipelined behind STARTTLS is discarded, never answered
        // inside TLS (as start_tls() does before the handoff).
        std::string_view rest = input.substr(used);
        if (!rest.empty()) {
          Log::event(LogLevel::kWarning, "TLS",
                     "discarding " + std::to_string(rest.size()) +
                         " plaintext bytes sent after STARTTLS by " + who() + ": " +
                         protocol::printable(rest),
                     {{"client", client_labels()}});
          metrics().inc("mxscreen_tls_injection_discarded_total");
        }
        tls_ = std::make_unique<TlsSession>(runtime_->tls);
        return input.size();
      }
      case Kind::kNeedMore:
      case Kind::kWait:
        return used;
    }
  }
  return used;
}

// The backend answered: client commands that waited for it may go now.
void Session::resume_commands() {
  size_t used = run_commands(commands_held_);
  commands_held_.erase(0, used);
  if (state_ != State::kSplice) return;
  if (commands_held_.empty() && client_eof_) {
    backend_conn_->shutdown_write();  // the client's FIN, deferred until its commands went out
    return;
  }
  const auto limit = config().server.buffer_size;
  if (!client_eof_ && commands_held_.size() < limit && backend_conn_->queued() <= limit) {
    client_conn_.start_reading();
  }
}

void Session::command_refused(const protocol::CommandStream::Action& action) {
  using Refused = protocol::CommandStream::Refused;
  const char* what = action.refused == Refused::kXclient    ? "xclient"
                     : action.refused == Refused::kXforward ? "xforward"
                     : action.refused == Refused::kStarttls ? "starttls"
                                                            : "line_too_long";
  std::string_view reply = action.reply.substr(0, action.reply.size() - 2);  // no CRLF
  std::string_view line = action.line;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  Log::event(LogLevel::kWarning, "SPLICE",
             "NOQUEUE: reject: " + std::string(what) + " from " + who() +
                 " after handoff: " + std::string(reply) + "; " + protocol::printable(line),
             {{"client", client_labels()}, {"command", what}});
  metrics().inc("mxscreen_splice_refused_total", std::string("command=\"") + what + "\"");
}

void Session::on_drained(Conn& conn) {
  if (state_ == State::kDialogue && &conn == &client_conn_ && !sleeping_ && !tls_pending()) {
    client_conn_.start_reading();
    run_dialogue();
    return;
  }
  if (state_ != State::kSplice) return;
  if (kernel_splice_) return;
  try_kernel_splice();
  if (kernel_splice_) return;
  // The side that fed this queue may read again.
  if (&conn == &client_conn_) {
    if (!backend_eof_) backend_conn_->start_reading();
  } else if (!client_eof_ && commands_held_.size() < config().server.buffer_size) {
    client_conn_.start_reading();
  }
}

void Session::backend_failed(const std::string& reason) {
  const auto& backend = config().backend;
  Log::event(
      LogLevel::kWarning, "BACKEND",
      "backend " + backend.address.to_string() + " unavailable: " + reason + "; 421 to " + who(),
      {{"client", client_labels()}, {"reason", reason}});
  const char* kind = step_ == Step::kConnecting                               ? "connect"
                     : step_ == Step::kBanner                                 ? "banner"
                     : step_ == Step::kXclient || step_ == Step::kXclientEhlo ? "xclient"
                                                                              : "replay";
  metrics().inc("mxscreen_backend_failures_total", std::string("step=\"") + kind + "\"");
  if (backend_conn_) backend_conn_->close();
  reply_and_close(std::string(checks::replies::kServiceUnavailable) + "\r\n", "backend_failure");
}

}  // namespace mxscreen::proxy
