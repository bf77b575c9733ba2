// proxy/handoff.cc: see handoff.h. The backend half of a session (DESIGN.md steps 5-6): wait
// for a backend slot, connect, pass the client's identity (PROXY header first, or XCLIENT
// after the backend's EHLO), swallow the backend's banner, replay what the pre-dialogue
// accepted (EHLO, MAIL, the held RCPT), give the client the backend's own answer to that RCPT,
// then splice bytes both ways.
#include "proxy/handoff.h"

#include <strings.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "checks/replies.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "protocol/reply.h"
#include "protocol/xclient.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {
namespace {

bool positive(int code) { return code >= 200 && code < 400; }

// A session moves to splice(2) once this many bytes have gone one way on the copy path: bulk
// data (a message body). Below it the two pipes, their six descriptors and the epoll
// registrations cost more than the copy they save: a 1 KB message session took 27% more CPU
// with splice(2) at once than on the copy path (bench/run --quick --only legit, 1.81 against
// 1.42 CPU s per 10,000 sessions).
constexpr uint64_t kKernelSpliceAfter = 64 * 1024;

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

Handoff::Handoff(HandoffClient& client, Mode mode, const Replay& replay)
    : client_(client),
      mode_(mode),
      esmtp_(replay.esmtp),
      helo_size_(static_cast<uint32_t>(replay.helo.size())),
      mail_size_(static_cast<uint32_t>(replay.mail_line.size())),
      rcpt_size_(static_cast<uint32_t>(replay.rcpt_line.size())) {
  size_t size = replay.helo.size() + replay.mail_line.size() + replay.rcpt_line.size();
  if (size == 0) return;
  text_ = std::make_unique_for_overwrite<char[]>(size);
  char* out = text_.get();
  for (auto part : {replay.helo, replay.mail_line, replay.rcpt_line}) {
    std::memcpy(out, part.data(), part.size());
    out += part.size();
  }
}

void Handoff::set_verified_name(std::string_view name) {
  if (name.empty()) return;
  size_t kept = helo_size_ + mail_size_ + rcpt_size_;
  auto text = std::make_unique_for_overwrite<char[]>(kept + name.size());
  if (kept != 0) std::memcpy(text.get(), text_.get(), kept);
  std::memcpy(text.get() + kept, name.data(), name.size());
  text_ = std::move(text);
  name_size_ = static_cast<uint32_t>(name.size());
}

// What lives only while there is a backend connection (a queued handoff has none of it).
struct Handoff::Link {
  explicit Link(ConnHandler& handler) : conn(handler) {}

  Conn conn;
  protocol::ReplyReader reader;
  Timer timer;  // connect and reply timeouts while handing off, the idle timeout spliced
  // handoff = "xclient" or mxscreen's TLS: the client's command stream after the handoff, and
  // client bytes that wait for the backend's replies (bounded by server.buffer_size: reading
  // pauses).
  std::unique_ptr<protocol::CommandStream> commands;
  std::string commands_held;
  bool client_eof = false;
  bool backend_eof = false;
  bool kernel_splice_tried = false;  // tried once per session
  bool kernel_splice_files = false;  // took Server::kKernelSpliceFiles descriptors
  bool slot_released = false;        // Postfix closed first: its slot went to the next waiter
  uint64_t last_activity = 0;        // uv_now() of the last spliced byte
  uint64_t bytes_in = 0;             // client -> backend
  uint64_t bytes_out = 0;            // backend -> client
  // server.kernel_splice: the splice(2) path once both write queues are empty (declared after
  // the connection: it goes first).
  std::unique_ptr<KernelSplice> kernel_splice;
};

Handoff::~Handoff() {
  if (!link_) return;
  if (!link_->slot_released) server().backend_slot_released();
  link_->kernel_splice.reset();
  if (link_->kernel_splice_files) server().give_back_kernel_splice_files();
}

bool Handoff::backend_eof() const { return link_ && link_->backend_eof; }
uint64_t Handoff::bytes_in() const { return link_ ? link_->bytes_in : 0; }
uint64_t Handoff::bytes_out() const { return link_ ? link_->bytes_out : 0; }

const Config& Handoff::config() const { return *client_.runtime().config; }

void Handoff::refuse_busy(const std::string& why) {
  report_backend_busy(config(), why, rcpt_held(), client_.who(), client_.client_labels());
  client_.reply_and_close(std::string(checks::replies::kAllPortsBusy) + "\r\n", "backend_busy");
}

void Handoff::start(const std::shared_ptr<bool>& alive) {
  // Slots may have filled while this client was screened: wait for one, first come first
  // served, across every worker.
  switch (server().backend_slot(this, alive, &ticket_)) {
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
                 std::to_string(server().backend_queued()) + " waiting",
             {{"client", client_.client_labels()}});
  // The server's wake timer, not one of our own: a queued session costs what a held one does.
  uint64_t now = uv_now(server().loop());
  queued_at_ = static_cast<uint32_t>(now);
  server().wake_at(
      this, alive,
      now + static_cast<uint64_t>(std::max<int64_t>(1, backend.queue_timeout.count())));
}

bool Handoff::slot_granted(uint64_t ticket) {
  if (step_ != Step::kQueued || ticket != ticket_) return false;
  ticket_ = 0;
  metrics().inc("mxscreen_backend_queue_total", "outcome=\"served\"");
  metrics().observe(
      "mxscreen_backend_queue_wait_seconds", "",
      static_cast<double>(static_cast<uint32_t>(uv_now(server().loop())) - queued_at_) / 1000.0);
  connect_backend();
  return true;
}

void Handoff::wake(uint64_t) {
  // The one deadline this handoff sets: the queue wait's (ignored once served).
  if (step_ == Step::kQueued) queue_timed_out();
}

void Handoff::queue_timed_out() {
  // False: the slot is already on its way (another worker freed it): take it when it comes.
  if (!server().backend_queue_leave(ticket_)) return;
  ticket_ = 0;
  refuse_busy("timeout");
}

void Handoff::end() {
  step_ = Step::kDone;
  if (!link_) {
    if (ticket_) {
      // Gone while queued: its place is free at once. A slot already on its way is passed on
      // when it arrives (slot_granted says no).
      if (server().backend_queue_leave(ticket_)) {
        metrics().inc("mxscreen_backend_queue_total", "outcome=\"left\"");
      }
      ticket_ = 0;
    }
    return;
  }
  link_->timer.stop();
  link_->kernel_splice.reset();  // its descriptors go before the connections close
  link_->conn.close_after_flush();
}

void Handoff::close_backend() {
  if (link_) link_->conn.close();
}

void Handoff::connect_backend() {
  step_ = Step::kConnecting;
  const auto& backend = config().backend;
  // From here the slot is released when this object dies (link_ set).
  link_ = std::make_unique<Link>(*this);
  link_->timer.init<&Handoff::timer_fired>(server().loop(), this);
  int rc = link_->conn.init(server().loop());
  if (rc == 0) rc = link_->conn.connect(backend.address);
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
  uv_tcp_nodelay(link_->conn.tcp(), 1);
  const auto& backend = config().backend;
  if (backend.handoff == HandoffMode::kProxyV1) {
    link_->conn.write(
        protocol::encode_proxy_v1(client_.client_endpoint(), client_.local_endpoint()));
  } else if (backend.handoff == HandoffMode::kProxyV2) {
    link_->conn.write(
        protocol::encode_proxy_v2(client_.client_endpoint(), client_.local_endpoint()));
  }
  step_ = Step::kBanner;
  link_->reader.reset();
  link_->conn.start_reading();
  arm_timer(backend.banner_timeout);
}

void Handoff::backend_reply(std::string_view bytes) {
  while (handing_off() && !bytes.empty()) {
    size_t consumed = 0;
    auto status = link_->reader.feed(bytes, &consumed);
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
  link_->reader.reset();
  link_->conn.write(std::string(line) + "\r\n");
}

void Handoff::backend_step_done() {
  int code = link_->reader.code();
  std::string raw = protocol::format_multiline_reply(code, "", link_->reader.lines());
  std::string first = link_->reader.lines().empty() ? "" : link_->reader.lines()[0];
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
      backend_chunking_ = offers(link_->reader.lines(), "CHUNKING");
      if (code != 250 || !offers(link_->reader.lines(), "XCLIENT")) {
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
      link_->reader.reset();
      link_->conn.write(protocol::encode_xclient(attrs));
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
      if (esmtp_) backend_chunking_ = code == 250 && offers(link_->reader.lines(), "CHUNKING");
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
  start_splice(mode_ == Mode::kAllowlisted
                   ? raw
                   : checks::replies::greeting(client_.runtime().banner) + "\r\n");
}

void Handoff::start_splice(const std::string& to_client) {
  link_->timer.stop();
  step_ = Step::kSplice;
  metrics().inc("mxscreen_handoffs_total", std::string("mode=\"") +
                                               (mode_ == Mode::kAllowlisted     ? "allowlisted"
                                                : mode_ == Mode::kAfterDialogue ? "after_dialogue"
                                                                                : "after_greet") +
                                               "\"");
  link_->bytes_out += to_client.size();
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
    options.offer_starttls = client_.runtime().tls != nullptr && !client_.client_tls();
    link_->commands = std::make_unique<protocol::CommandStream>(options);
  }
  // Client input not yet answered goes to the backend in the order it came: lines still in
  // the dialogue's reader first, then what arrived during the handoff.
  std::string pending = client_.take_client_input();
  if (!pending.empty()) {
    link_->bytes_in += pending.size();
    commands_from_client(pending);
  }
  link_->last_activity = uv_now(server().loop());
  client_.client_conn().start_reading();
  link_->conn.start_reading();
  arm_timer(config().smtp.idle_timeout);
  try_kernel_splice();
}

void Handoff::try_kernel_splice() {
  // Only bytes nobody reads (no TLS, no XCLIENT command reading), only once bulk data flows
  // (kKernelSpliceAfter), only from a clean start: both write queues empty (what libuv still
  // holds must not be overtaken) and both sides open.
  Conn& client = client_.client_conn();
  if (link_->kernel_splice_tried || step_ != Step::kSplice || !config().server.kernel_splice ||
      client_.client_tls() || link_->commands || link_->client_eof || link_->backend_eof ||
      std::max(link_->bytes_in, link_->bytes_out) < kKernelSpliceAfter || client.queued() != 0 ||
      link_->conn.queued() != 0) {
    return;
  }
  link_->kernel_splice_tried = true;
  if (!server().take_kernel_splice_files()) {
    // The descriptors are there for new clients first: copy this one.
    metrics().inc("mxscreen_kernel_splice_total", "result=\"no_files\"");
    return;
  }
  link_->kernel_splice_files = true;
  client.stop_reading();
  link_->conn.stop_reading();
  int status = 0;
  link_->kernel_splice =
      KernelSplice::start(server().loop(), client.tcp(), link_->conn.tcp(), *this,
                          {&link_->bytes_in, &link_->bytes_out, &link_->last_activity}, &status);
  if (link_->kernel_splice) {
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
  link_->kernel_splice.reset();
  if (link_->kernel_splice_files) server().give_back_kernel_splice_files();
  link_->kernel_splice_files = false;
  client_.client_conn().start_reading();
  link_->conn.start_reading();
}

void Handoff::kernel_splice_eof(bool client_side) {
  // As on the copy path: the FIN went on; the session ends when both sides are done.
  (client_side ? link_->client_eof : link_->backend_eof) = true;
  if (!client_side) release_slot();
  if (link_->client_eof && link_->backend_eof) client_.finish("spliced");
}

void Handoff::release_slot() {
  // Postfix closed the connection (after its 221, or its own timeout): that smtpd process is
  // free, so its slot goes to the next waiter now, not once this client has read the 221 and
  // closed too. Under a burst the client's own close can come long after.
  if (link_->slot_released) return;
  link_->slot_released = true;
  server().backend_slot_released();
}

void Handoff::kernel_splice_error(bool client_side, int status) {
  if (client_side) {
    // As the session's own client error: a reset after the backend closed ends a complete
    // session.
    client_.client_conn().close();
    client_.finish(link_->backend_eof ? "spliced" : "client_reset");
    return;
  }
  on_error(link_->conn, status);
}

void Handoff::client_bytes(std::string_view bytes) {
  link_->last_activity = uv_now(server().loop());
  link_->bytes_in += bytes.size();
  commands_from_client(bytes);
  if (step_ != Step::kSplice) return;
  // Back-pressure: stop reading the client until the backend's queue has drained.
  if (link_->conn.queued() > config().server.buffer_size) client_.client_conn().stop_reading();
  try_kernel_splice();  // a message body: once its bytes are out, the kernel moves the rest
}

void Handoff::splice_to_client(std::string_view bytes) {
  link_->last_activity = uv_now(server().loop());
  link_->bytes_out += bytes.size();
  replies_from_backend(bytes);
  if (step_ != Step::kSplice) return;
  // Back-pressure: stop reading the backend until the client's queue has drained.
  if (client_.client_conn().queued() > config().server.buffer_size) link_->conn.stop_reading();
  try_kernel_splice();
}

void Handoff::commands_from_client(std::string_view bytes) {
  if (!link_->commands) {
    link_->conn.write(bytes);
    return;
  }
  if (link_->commands_held.empty()) {
    size_t used = run_commands(bytes);
    bytes.remove_prefix(used);
  }
  link_->commands_held.append(bytes);  // behind what already waits
  if (link_->commands_held.size() >= config().server.buffer_size)
    client_.client_conn().stop_reading();
}

void Handoff::replies_from_backend(std::string_view bytes) {
  if (!link_->commands) {
    client_.client_write(bytes);
    return;
  }
  std::string out;
  if (link_->commands->backend_bytes(bytes, &out) != protocol::CommandStream::ReplyStatus::kOk) {
    Log::event(LogLevel::kWarning, "BACKEND",
               "backend " + config().backend.address.to_string() + " sent a reply over " +
                   std::to_string(protocol::CommandStream::kMaxReplyBytes) + " bytes to " +
                   client_.who() + " after handoff; closing both sides",
               {{"client", client_.client_labels()}});
    client_.finish("backend_error");
    return;
  }
  client_.client_write(out);
  if (!link_->commands_held.empty()) resume_commands();
}

size_t Handoff::run_commands(std::string_view input) {
  using Kind = protocol::CommandStream::Action::Kind;
  size_t used = 0;
  while (step_ == Step::kSplice) {
    auto action = link_->commands->next(input.substr(used));
    used += action.consumed;
    switch (action.kind) {
      case Kind::kForward:
        link_->conn.write(action.forward);
        break;
      case Kind::kAnswer:
        command_refused(action);
        link_->bytes_out += action.reply.size();
        client_.client_write(action.reply);
        break;
      case Kind::kStartTls: {
        link_->bytes_out += action.reply.size();
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
  size_t used = run_commands(link_->commands_held);
  link_->commands_held.erase(0, used);
  if (step_ != Step::kSplice) return;
  if (link_->commands_held.empty() && link_->client_eof) {
    link_->conn.shutdown_write();  // the client's FIN, deferred until its commands went out
    return;
  }
  const auto limit = config().server.buffer_size;
  if (!link_->client_eof && link_->commands_held.size() < limit && link_->conn.queued() <= limit) {
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
  link_->client_eof = true;
  // Commands still waiting for the backend's replies go first (resume_commands()).
  if (!link_->commands_held.empty() && !link_->backend_eof) return;
  link_->conn.shutdown_write();
  if (link_->backend_eof) client_.finish("spliced");
}

void Handoff::client_drained() {
  if (link_->kernel_splice) return;
  try_kernel_splice();
  if (link_->kernel_splice) return;
  // The backend, which fed this queue, may be read again.
  if (!link_->backend_eof) link_->conn.start_reading();
}

void Handoff::on_read(Conn&, std::string_view bytes) {
  if (step_ == Step::kSplice) {
    splice_to_client(bytes);
  } else if (handing_off()) {
    backend_reply(bytes);
  }
}

void Handoff::on_eof(Conn&) {
  link_->backend_eof = true;
  if (step_ == Step::kSplice) {
    release_slot();
    client_.client_close_notify();
    client_.client_conn().shutdown_write();
    if (link_->client_eof) client_.finish("spliced");
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
  if (step_ != Step::kSplice || link_->kernel_splice) return;
  try_kernel_splice();
  if (link_->kernel_splice) return;
  // The client, which fed this queue, may be read again.
  if (!link_->client_eof && link_->commands_held.size() < config().server.buffer_size) {
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
  if (link_) link_->conn.close();
  client_.reply_and_close(std::string(checks::replies::kServiceUnavailable) + "\r\n",
                          "backend_failure");
}

void Handoff::arm_timer(std::chrono::milliseconds after) { link_->timer.start(after); }

void Handoff::timer_fired() {
  if (handing_off()) {
    backend_failed(step_ == Step::kConnecting ? "connect timeout" : "reply timeout");
    return;
  }
  if (step_ != Step::kSplice) return;
  uint64_t idle = static_cast<uint64_t>(config().smtp.idle_timeout.count());
  uint64_t quiet = uv_now(server().loop()) - link_->last_activity;
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
