// proxy/handoff.cc: see handoff.h. The backend half of a session (DESIGN.md steps 5-6): wait
// for a backend slot, connect, pass the client's identity (PROXY header first, or XCLIENT
// after the backend's EHLO), swallow the backend's banner, replay what the pre-dialogue
// accepted (EHLO, MAIL, the held RCPT), give the client the backend's own answer to that RCPT,
// then splice bytes both ways.
#include "proxy/handoff.h"

#include <strings.h>

#include <algorithm>
#include <cstring>

#include "checks/replies.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "protocol/xclient.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"

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

void report_backend_busy(const Config& config, const std::string& why, bool rcpt,
                         const std::string& who, const std::string& client_labels) {
  const auto& backend = config.backend;
  // Postfix is never flooded: the client retries later, as from a busy postscreen. Named as
  // the command whose reply this is: the held RCPT, or the connection (no reply of ours yet).
  std::string detail =
      why == "full"
          ? "backend queue full: backend.max_sessions (" + std::to_string(backend.max_sessions) +
                ") reached, backend.queue_max (" + std::to_string(backend.queue_max) + ") waiting"
          : "backend queue timeout after " + std::to_string(backend.queue_timeout.count() / 1000) +
                "s (backend.queue_timeout)";
  Log::event(LogLevel::kWarning, "NOQUEUE",
             std::string("NOQUEUE: reject: ") + (rcpt ? "RCPT" : "CONNECT") + " from " + who +
                 ": 421 4.3.2 " + detail,
             {{"client", client_labels}, {"reason", "backend_queue_" + why}});
  if (why == "full") metrics().inc("mxscreen_limit_hits_total", "limit=\"backend_max_sessions\"");
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"" + why + "\"");
}

Handoff::Handoff(HandoffClient& client, Server& server, const Runtime& runtime,
                 const std::shared_ptr<bool>& alive, Mode mode, const Replay& replay)
    : client_(client),
      server_(server),
      runtime_(runtime),
      alive_(alive),
      mode_(mode),
      esmtp_(replay.esmtp),
      helo_size_(static_cast<uint32_t>(replay.helo.size())),
      mail_size_(static_cast<uint32_t>(replay.mail_line.size())),
      rcpt_size_(static_cast<uint32_t>(replay.rcpt_line.size())) {
  text_.reserve(replay.helo.size() + replay.mail_line.size() + replay.rcpt_line.size());
  text_.append(replay.helo).append(replay.mail_line).append(replay.rcpt_line);
}

Handoff::~Handoff() {
  if (backend_) server_.backend_slot_released();
  kernel_splice_.reset();
  if (kernel_splice_files_) server_.give_back_kernel_splice_files();
}

const Config& Handoff::config() const { return *runtime_.config; }

void Handoff::refuse_busy(const std::string& why) {
  report_backend_busy(config(), why, rcpt_held(), client_.who(), client_.client_labels());
  client_.reply_and_close(std::string(checks::replies::kAllPortsBusy) + "\r\n", "backend_busy");
}

void Handoff::start() {
  // Slots may have filled while this client was screened: wait for one, first come first
  // served, across every worker.
  switch (server_.backend_slot(this, alive_, &ticket_)) {
    case BackendSlots::Result::kGranted:
      connect_backend();
      return;
    case BackendSlots::Result::kFull:
      refuse_busy("full");
      return;
    case BackendSlots::Result::kQueued:
      break;
  }
  const auto& backend = config().backend;
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"queued\"");
  Log::event(LogLevel::kInfo, "QUEUE",
             "QUEUE " + client_.who() + " waits for a backend slot: backend.max_sessions (" +
                 std::to_string(backend.max_sessions) + ") busy, " +
                 std::to_string(server_.backend_queued()) + " waiting",
             {{"client", client_.client_labels()}});
  // The server's wake timer, not one of our own: a queued session costs what a held one does.
  queued_at_ = uv_now(server_.loop());
  wake_deadline_ =
      queued_at_ + static_cast<uint64_t>(std::max<int64_t>(1, backend.queue_timeout.count()));
  server_.wake_at(this, alive_, wake_deadline_);
}

bool Handoff::slot_granted(uint64_t ticket) {
  if (step_ != Step::kQueued || ticket != ticket_) return false;
  ticket_ = 0;
  wake_deadline_ = 0;
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"served\"");
  metrics().observe("mxscreen_backend_queue_wait_seconds", "",
                    static_cast<double>(uv_now(server_.loop()) - queued_at_) / 1000.0);
  connect_backend();
  return true;
}

void Handoff::wake(uint64_t deadline) {
  if (wake_deadline_ != deadline) return;  // served or gone
  wake_deadline_ = 0;
  if (step_ == Step::kQueued) queue_timed_out();
}

void Handoff::queue_timed_out() {
  // False: the slot is already on its way (another worker freed it): take it when it comes.
  if (!server_.backend_queue_leave(ticket_)) return;
  ticket_ = 0;
  refuse_busy("timeout");
}

void Handoff::end() {
  step_ = Step::kDone;
  stop_timer();
  kernel_splice_.reset();  // its descriptors go before the connections close
  if (ticket_) {
    // Gone while queued: its place is free at once. A slot already on its way is passed on
    // when it arrives (slot_granted says no).
    if (server_.backend_queue_leave(ticket_)) {
      metrics().inc("mxscreen_backend_queue_total", "outcome=\"left\"");
    }
    ticket_ = 0;
  }
  if (backend_) backend_->close_after_flush();
}

void Handoff::close_backend() {
  if (backend_) backend_->close();
}

void Handoff::connect_backend() {
  step_ = Step::kConnecting;
  const auto& backend = config().backend;
  reader_ = std::make_unique<protocol::ReplyReader>();
  // From here the slot is released when this object dies (backend_ set).
  backend_ = std::make_unique<Conn>(server_.loop(), *this);
  int rc = backend_->init();
  if (rc == 0) rc = backend_->connect(backend.address);
  if (rc != 0) {
    backend_failed(uv_error(rc));
    return;
  }
  arm_timer(backend.connect_timeout);
}

void Handoff::on_connect(Conn&, int status) {
  if (!handing_off()) return;
  if (status != 0) {
    backend_failed(uv_error(status));
    return;
  }
  uv_tcp_nodelay(backend_->tcp(), 1);
  const auto& backend = config().backend;
  if (backend.handoff == HandoffMode::kProxyV1) {
    backend_->write(protocol::encode_proxy_v1(client_.client_endpoint(), client_.local_endpoint()));
  } else if (backend.handoff == HandoffMode::kProxyV2) {
    backend_->write(protocol::encode_proxy_v2(client_.client_endpoint(), client_.local_endpoint()));
  }
  step_ = Step::kBanner;
  reader_->reset();
  backend_->start_reading();
  arm_timer(backend.banner_timeout);
}

void Handoff::backend_reply(std::string_view bytes) {
  while (handing_off() && !bytes.empty()) {
    size_t consumed = 0;
    auto status = reader_->feed(bytes, &consumed);
    if (status == protocol::ReplyReader::Status::kNeedMore) return;  // kept by the reader
    if (status == protocol::ReplyReader::Status::kInvalid) {
      backend_failed("malformed reply from backend");
      return;
    }
    bytes.remove_prefix(consumed);
    backend_step_done();
  }
  // Whatever the backend sent after the reply that completed the handoff is the client's.
  if (step_ == Step::kSplice && !bytes.empty()) splice_to_client(bytes);
}

void Handoff::send_backend_step(Step step, std::string_view line) {
  step_ = step;
  reader_->reset();
  backend_->write(std::string(line) + "\r\n");
}

void Handoff::backend_step_done() {
  int code = reader_->code();
  std::string raw = protocol::format_multiline_reply(code, "", reader_->lines());
  std::string first = reader_->lines().empty() ? "" : reader_->lines()[0];
  const auto& backend = config().backend;
  bool dialogue = helo_size_ != 0;
  bool rcpt = rcpt_held();

  switch (step_) {
    case Step::kQueued:  // no backend connection yet
    case Step::kConnecting:
    case Step::kSplice:
    case Step::kDone:
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
      backend_chunking_ = offers(reader_->lines(), "CHUNKING");
      if (code != 250 || !offers(reader_->lines(), "XCLIENT")) {
        backend_failed("backend does not offer XCLIENT to us (smtpd_authorized_xclient_hosts)");
        return;
      }
      protocol::XclientAttrs attrs;
      attrs.client = client_.client_endpoint();
      // NAME= only for a hostname that forward-confirms (Postfix's "verified" name); else
      // [UNAVAILABLE] and Postfix logs unknown[addr], as it does for its own lookups.
      attrs.name = client_.verified_name();
      if (dialogue) {
        attrs.helo = helo();
        attrs.proto = esmtp_ ? "ESMTP" : "SMTP";
      }
      step_ = Step::kXclient;
      reader_->reset();
      backend_->write(protocol::encode_xclient(attrs));
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
      if (esmtp_) backend_chunking_ = code == 250 && offers(reader_->lines(), "CHUNKING");
      if (!positive(code) || mail_size_ == 0) {
        // After-EHLO handoff: the client has our EHLO reply. A refusal at RCPT time goes to
        // the client as the answer to its RCPT; nothing refused is reported as accepted.
        start_splice(rcpt && !positive(code) ? raw : "");
        return;
      }
      send_backend_step(Step::kMail, mail_line());
      return;
    case Step::kMail:
      if (!positive(code) || !rcpt) {
        start_splice(rcpt ? raw : "");
        return;
      }
      send_backend_step(Step::kRcpt, rcpt_line());
      return;
    case Step::kRcpt:
      start_splice(raw);
      return;
  }
  // The backend greeted us (after the identity). Replay the dialogue, or splice now.
  if (dialogue) {
    send_backend_step(Step::kHelo, (esmtp_ ? "EHLO " : "HELO ") + std::string(helo()));
    return;
  }
  start_splice(mode_ == Mode::kAllowlisted ? raw
                                           : checks::replies::greeting(runtime_.banner) + "\r\n");
}

void Handoff::start_splice(const std::string& to_client) {
  stop_timer();
  step_ = Step::kSplice;
  metrics().inc("mxscreen_handoffs_total", std::string("mode=\"") +
                                               (mode_ == Mode::kAllowlisted     ? "allowlisted"
                                                : mode_ == Mode::kAfterDialogue ? "after_dialogue"
                                                                                : "after_greet") +
                                               "\"");
  bytes_out_ += to_client.size();
  client_.client_write(to_client);
  if (config().backend.handoff == HandoffMode::kXclient || client_.client_tls()) {
    // Postfix believes XCLIENT from mxscreen's address at any time outside a transaction
    // (XCLIENT_README): from here on the client's commands are read, its XCLIENT/XFORWARD
    // answered by mxscreen and never forwarded (issue 13). Inside mxscreen's TLS the backend's
    // own STARTTLS (smtpd_tls_security_level = may, for the sessions spliced at connect) is
    // neither offered nor relayed: it would start a second TLS inside ours (issue 14).
    protocol::CommandStream::Options options;
    options.line_limit =
        std::max<size_t>(static_cast<size_t>(config().smtp.line_length_limit), 512);
    options.chunking = backend_chunking_;
    options.offer_starttls = runtime_.tls != nullptr && !client_.client_tls();
    commands_ = std::make_unique<protocol::CommandStream>(options);
  }
  // Client input not yet answered goes to the backend in the order it came: lines still in
  // the dialogue's reader first, then what arrived during the handoff.
  std::string pending = client_.take_client_input();
  if (!pending.empty()) {
    bytes_in_ += pending.size();
    commands_from_client(pending);
  }
  last_activity_ = uv_now(server_.loop());
  client_.client_conn().start_reading();
  backend_->start_reading();
  arm_timer(config().smtp.idle_timeout);
  try_kernel_splice();
}

void Handoff::try_kernel_splice() {
  // Only bytes nobody reads (no TLS, no XCLIENT command reading), only from a clean start:
  // both write queues empty (what libuv still holds must not be overtaken) and both sides open.
  Conn& client = client_.client_conn();
  if (kernel_splice_tried_ || step_ != Step::kSplice || !config().server.kernel_splice ||
      client_.client_tls() || commands_ || client_eof_ || backend_eof_ || client.queued() != 0 ||
      backend_->queued() != 0) {
    return;
  }
  kernel_splice_tried_ = true;
  if (!server_.take_kernel_splice_files()) {
    // The descriptors are there for new clients first: copy this one.
    metrics().inc("mxscreen_kernel_splice_total", "result=\"no_files\"");
    return;
  }
  kernel_splice_files_ = true;
  client.stop_reading();
  backend_->stop_reading();
  int status = 0;
  kernel_splice_ = KernelSplice::start(server_.loop(), client.tcp(), backend_->tcp(), *this,
                                       {&bytes_in_, &bytes_out_, &last_activity_}, &status);
  if (kernel_splice_) {
    metrics().inc("mxscreen_kernel_splice_total", "result=\"spliced\"");
    return;
  }
  kernel_splice_refused(status);
}

void Handoff::kernel_splice_refused(int status) {
  // No pipe or descriptor to be had (EMFILE), or a kernel without splice(2) for these
  // sockets: the copy path carries on, nothing was moved yet.
  metrics().inc("mxscreen_kernel_splice_total", "result=\"fallback\"");
  Log::event(LogLevel::kInfo, "SPLICE",
             "splice(2) unavailable for " + client_.who() + ": " + uv_error(status) + "; copying",
             {{"client", client_.client_labels()}});
  kernel_splice_.reset();
  if (kernel_splice_files_) server_.give_back_kernel_splice_files();
  kernel_splice_files_ = false;
  client_.client_conn().start_reading();
  backend_->start_reading();
}

void Handoff::kernel_splice_eof(bool client_side) {
  // As on the copy path: the FIN went on; the session ends when both sides are done.
  (client_side ? client_eof_ : backend_eof_) = true;
  if (client_eof_ && backend_eof_) client_.finish("spliced");
}

void Handoff::kernel_splice_error(bool client_side, int status) {
  if (client_side) {
    // As the session's own client error: a reset after the backend closed ends a complete
    // session.
    client_.client_conn().close();
    client_.finish(backend_eof_ ? "spliced" : "client_reset");
    return;
  }
  on_error(*backend_, status);
}

void Handoff::client_bytes(std::string_view bytes) {
  last_activity_ = uv_now(server_.loop());
  bytes_in_ += bytes.size();
  commands_from_client(bytes);
  if (step_ != Step::kSplice) return;
  // Back-pressure: stop reading the client until the backend's queue has drained.
  if (backend_->queued() > config().server.buffer_size) client_.client_conn().stop_reading();
}

void Handoff::splice_to_client(std::string_view bytes) {
  last_activity_ = uv_now(server_.loop());
  bytes_out_ += bytes.size();
  replies_from_backend(bytes);
  if (step_ != Step::kSplice) return;
  // Back-pressure: stop reading the backend until the client's queue has drained.
  if (client_.client_conn().queued() > config().server.buffer_size) backend_->stop_reading();
}

void Handoff::commands_from_client(std::string_view bytes) {
  if (!commands_) {
    backend_->write(bytes);
    return;
  }
  if (commands_held_.empty()) {
    size_t used = run_commands(bytes);
    bytes.remove_prefix(used);
  }
  commands_held_.append(bytes);  // behind what already waits
  if (commands_held_.size() >= config().server.buffer_size) client_.client_conn().stop_reading();
}

void Handoff::replies_from_backend(std::string_view bytes) {
  if (!commands_) {
    client_.client_write(bytes);
    return;
  }
  std::string out;
  if (commands_->backend_bytes(bytes, &out) != protocol::CommandStream::ReplyStatus::kOk) {
    Log::event(LogLevel::kWarning, "BACKEND",
               "backend " + config().backend.address.to_string() + " sent a reply over " +
                   std::to_string(protocol::CommandStream::kMaxReplyBytes) + " bytes to " +
                   client_.who() + " after handoff; closing both sides",
               {{"client", client_.client_labels()}});
    client_.finish("backend_error");
    return;
  }
  client_.client_write(out);
  if (!commands_held_.empty()) resume_commands();
}

size_t Handoff::run_commands(std::string_view input) {
  using Kind = protocol::CommandStream::Action::Kind;
  size_t used = 0;
  while (step_ == Step::kSplice) {
    auto action = commands_->next(input.substr(used));
    used += action.consumed;
    switch (action.kind) {
      case Kind::kForward:
        backend_->write(action.forward);
        break;
      case Kind::kAnswer:
        command_refused(action);
        bytes_out_ += action.reply.size();
        client_.client_write(action.reply);
        break;
      case Kind::kStartTls: {
        bytes_out_ += action.reply.size();
        client_.client_write(action.reply);
        // RFC 3207 4.2: plain text pipelined behind STARTTLS is discarded, never answered
        // inside TLS (as the session does before the handoff).
        std::string_view rest = input.substr(used);
        if (!rest.empty()) {
          Log::event(LogLevel::kWarning, "TLS",
                     "discarding " + std::to_string(rest.size()) +
                         " plaintext bytes sent after STARTTLS by " + client_.who() + ": " +
                         protocol::printable(rest),
                     {{"client", client_.client_labels()}});
          metrics().inc("mxscreen_tls_injection_discarded_total");
        }
        client_.start_client_tls();
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
void Handoff::resume_commands() {
  size_t used = run_commands(commands_held_);
  commands_held_.erase(0, used);
  if (step_ != Step::kSplice) return;
  if (commands_held_.empty() && client_eof_) {
    backend_->shutdown_write();  // the client's FIN, deferred until its commands went out
    return;
  }
  const auto limit = config().server.buffer_size;
  if (!client_eof_ && commands_held_.size() < limit && backend_->queued() <= limit) {
    client_.client_conn().start_reading();
  }
}

void Handoff::command_refused(const protocol::CommandStream::Action& action) {
  using Refused = protocol::CommandStream::Refused;
  const char* what = action.refused == Refused::kXclient    ? "xclient"
                     : action.refused == Refused::kXforward ? "xforward"
                     : action.refused == Refused::kStarttls ? "starttls"
                                                            : "line_too_long";
  std::string_view reply = action.reply.substr(0, action.reply.size() - 2);  // no CRLF
  std::string_view line = action.line;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  Log::event(LogLevel::kWarning, "SPLICE",
             "NOQUEUE: reject: " + std::string(what) + " from " + client_.who() +
                 " after handoff: " + std::string(reply) + "; " + protocol::printable(line),
             {{"client", client_.client_labels()}, {"command", what}});
  metrics().inc("mxscreen_splice_refused_total", std::string("command=\"") + what + "\"");
}

void Handoff::client_eof() {
  client_eof_ = true;
  // Commands still waiting for the backend's replies go first (resume_commands()).
  if (!commands_held_.empty() && !backend_eof_) return;
  backend_->shutdown_write();
  if (backend_eof_) client_.finish("spliced");
}

void Handoff::client_drained() {
  if (kernel_splice_) return;
  try_kernel_splice();
  if (kernel_splice_) return;
  // The backend, which fed this queue, may be read again.
  if (!backend_eof_) backend_->start_reading();
}

void Handoff::on_read(Conn&, std::string_view bytes) {
  if (step_ == Step::kSplice) {
    splice_to_client(bytes);
  } else if (handing_off()) {
    backend_reply(bytes);
  }
}

void Handoff::on_eof(Conn&) {
  backend_eof_ = true;
  if (step_ == Step::kSplice) {
    client_.client_close_notify();
    client_.client_conn().shutdown_write();
    if (client_eof_) client_.finish("spliced");
    return;
  }
  backend_failed("connection closed by backend during handoff");
}

void Handoff::on_error(Conn&, int status) {
  if (step_ == Step::kSplice) {
    Log::event(LogLevel::kWarning, "BACKEND",
               "backend " + config().backend.address.to_string() + " error for " + client_.who() +
                   " after handoff: " + uv_error(status) + "; closing both sides",
               {{"client", client_.client_labels()}});
    client_.finish("backend_error");
    return;
  }
  backend_failed(uv_error(status));
}

void Handoff::on_drained(Conn&) {
  if (step_ != Step::kSplice || kernel_splice_) return;
  try_kernel_splice();
  if (kernel_splice_) return;
  // The client, which fed this queue, may be read again.
  if (!client_eof_ && commands_held_.size() < config().server.buffer_size) {
    client_.client_conn().start_reading();
  }
}

void Handoff::backend_failed(const std::string& reason) {
  const auto& backend = config().backend;
  Log::event(LogLevel::kWarning, "BACKEND",
             "backend " + backend.address.to_string() + " unavailable: " + reason + "; 421 to " +
                 client_.who(),
             {{"client", client_.client_labels()}, {"reason", reason}});
  const char* kind = step_ == Step::kConnecting                               ? "connect"
                     : step_ == Step::kBanner                                 ? "banner"
                     : step_ == Step::kXclient || step_ == Step::kXclientEhlo ? "xclient"
                                                                              : "replay";
  metrics().inc("mxscreen_backend_failures_total", std::string("step=\"") + kind + "\"");
  if (backend_) backend_->close();
  client_.reply_and_close(std::string(checks::replies::kServiceUnavailable) + "\r\n",
                          "backend_failure");
}

void Handoff::arm_timer(std::chrono::milliseconds after) {
  if (!timer_) {  // made at connect: a queued handoff waits on the server's wake heap
    timer_ = std::make_unique<Timer>();
    timer_->init<&Handoff::timer_fired>(server_.loop(), this);
  }
  timer_->start(after);
}

void Handoff::stop_timer() {
  if (timer_) timer_->stop();
  wake_deadline_ = 0;
}

void Handoff::timer_fired() {
  if (handing_off()) {
    backend_failed(step_ == Step::kConnecting ? "connect timeout" : "reply timeout");
    return;
  }
  if (step_ != Step::kSplice) return;
  uint64_t idle = static_cast<uint64_t>(config().smtp.idle_timeout.count());
  uint64_t quiet = uv_now(server_.loop()) - last_activity_;
  if (quiet >= idle) {
    Log::event(LogLevel::kInfo, "IDLE", "idle timeout after handoff for " + client_.who(),
               {{"client", client_.client_labels()}});
    client_.client_conn().close();
    client_.finish("idle_timeout");
    return;
  }
  arm_timer(std::chrono::milliseconds(idle - quiet));
}

}  // namespace mxscreen::proxy
