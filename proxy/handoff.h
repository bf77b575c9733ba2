// proxy/handoff.h: the backend half of a session (DESIGN.md steps 5-6, docs/ARCHITECTURE.md).
// A Session makes one Handoff when its pre-dialogue is over and the client is to meet Postfix;
// from then on the Handoff owns everything on the backend side: the wait for a backend slot
// (backend.max_sessions, the FIFO queue, backend.queue_timeout), the backend connection (it is
// that connection's ConnHandler and KernelSpliceHandler), the client's identity (PROXY header
// or XCLIENT), the backend's banner, the replay of EHLO, MAIL and the held RCPT, and the splice
// both ways (copy path, protocol::CommandStream for XCLIENT or TLS sessions, kernel splice(2))
// with its byte counters, back-pressure, half-close and idle timeout.
//
// It reaches the client only through HandoffClient, which the session implements: the client
// connection (reading, back-pressure, half-close), writes through mxscreen's TLS, and the end
// of the session (one DISCONNECT line, which reads the byte counters here). The session keeps
// the client side (its connection, TLS, held input) and hands client events over once spliced.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/address.h"
#include "protocol/command_stream.h"
#include "proxy/conn.h"
#include "proxy/kernel_splice.h"

namespace mxscreen::proxy {

class Server;
struct Runtime;
struct Config;

// What a Handoff needs of its session: the client side, nothing of the pre-dialogue. The
// session is also the client connection's handler (one base, one vtable pointer per session).
class HandoffClient : public ConnHandler {
 public:
  // The client's connection, for reading (start/stop: back-pressure), its write queue's size
  // and half-close. Bytes to the client go through client_write(), never straight to it.
  virtual Conn& client_conn() = 0;
  virtual const protocol::Endpoint& client_endpoint() const = 0;
  virtual const protocol::Endpoint& local_endpoint() const = 0;
  // The runtime (config, banner, TLS context) the session started with, and its worker.
  virtual const Runtime& runtime() const = 0;
  virtual Server& server() const = 0;
  // Plaintext to the client (encrypted first inside mxscreen's TLS).
  virtual void client_write(std::string_view plaintext) = 0;
  // TLS close_notify before the FIN; nothing without TLS.
  virtual void client_close_notify() = 0;
  // The client talks through mxscreen's TLS (STARTTLS before or after the handoff).
  virtual bool client_tls() const = 0;
  // The client's STARTTLS was answered after the handoff: its bytes are TLS from here on.
  virtual void start_client_tls() = 0;
  // Client input nobody has answered yet (lines the dialogue did not read, what came during
  // the handoff), in the order it came; it goes to the backend first once spliced.
  virtual std::string take_client_input() = 0;
  // The forward-confirmed PTR name for XCLIENT NAME= as known now; empty: none (or not yet).
  virtual std::string verified_name() const = 0;
  // "[ip]:port" and the client label for log lines.
  virtual std::string who() const = 0;
  virtual std::string client_labels() const = 0;
  // Ends the session: one DISCONNECT line, counters; it calls Handoff::end(). The Handoff
  // itself lives on until the session is destroyed (the next loop turn).
  virtual void finish(const std::string& outcome) = 0;
  // Sends `reply` (CRLF included), closes the client once it is out, then finish(outcome).
  virtual void reply_and_close(const std::string& reply, const std::string& outcome) = 0;

 protected:
  ~HandoffClient() override = default;
};

// Logs and counts a "421 4.3.2" for a full backend (why "full") or a queue wait that timed out
// (why "timeout"): NOQUEUE line naming the held RCPT (rcpt) or the connection. The caller
// sends the reply.
void report_backend_busy(const Config& config, const std::string& why, bool rcpt,
                         const std::string& who, const std::string& client_labels);

class Handoff : public ConnHandler, public KernelSpliceHandler {
 public:
  // How the client meets the backend (mxscreen_handoffs_total's mode): allowlisted or PASS OLD
  // (the client gets Postfix's own banner), right after the greet wait (our banner, no
  // replay), or after the dialogue (replay of what it accepted).
  enum class Mode : uint8_t { kAllowlisted, kAfterGreet, kAfterDialogue };
  // What the pre-dialogue accepted and the backend must hear again.
  struct Replay {
    bool esmtp = false;
    std::string_view helo;       // the EHLO/HELO argument; empty: none
    std::string_view mail_line;  // the accepted MAIL line; empty: handoff after EHLO
    std::string_view rcpt_line;  // the held RCPT line; empty: none
  };

  Handoff(HandoffClient& client, Mode mode, const Replay& replay);
  ~Handoff() override;
  Handoff(const Handoff&) = delete;
  Handoff& operator=(const Handoff&) = delete;

  // Takes a backend slot and connects, or queues for one, or refuses (421, session finished).
  // `alive` is the session's liveness token (this object dies with the session): it guards
  // the queue's and the wake heap's callbacks.
  void start(const std::shared_ptr<bool>& alive);
  // Waiting in the backend queue (no backend connection yet).
  bool queued() const { return step_ == Step::kQueued; }
  // Bytes flow both ways (the handoff completed).
  bool spliced() const { return step_ == Step::kSplice; }
  bool backend_eof() const;
  // The client's held RCPT is what a refusal answers (else the connection).
  bool rcpt_held() const { return rcpt_size_ != 0; }
  // The client's lookups finished after the handoff started: the verified name (may be empty)
  // is kept here for XCLIENT, in the replay's one allocation.
  void set_verified_name(std::string_view name);
  std::string_view kept_verified_name() const {
    return part(helo_size_ + mail_size_ + rcpt_size_, name_size_);
  }

  // The backend slot this handoff queued for (ticket) is its own now: connect. False when it
  // no longer waits (gone, timed out): the caller passes the slot on.
  bool slot_granted(uint64_t ticket);
  // The server's wake heap: the queue wait (the one deadline a handoff sets) is over.
  void wake(uint64_t deadline);
  // The session ends (finish): leave the queue, stop splice(2), close the backend once its
  // queue is out. Called once; nothing here runs after it.
  void end();
  // SIGTERM before the splice: drop the backend connection now.
  void close_backend();

  // The client side, once spliced (the session hands these over).
  void client_bytes(std::string_view bytes);
  void client_eof();
  void client_drained();

  uint64_t bytes_in() const;   // client -> backend
  uint64_t bytes_out() const;  // backend -> client

  // The backend connection.
  void on_read(Conn& conn, std::string_view bytes) override;
  void on_eof(Conn& conn) override;
  void on_error(Conn& conn, int status) override;
  void on_drained(Conn& conn) override;
  void on_connect(Conn& conn, int status) override;

  void kernel_splice_eof(bool client_side) override;
  void kernel_splice_error(bool client_side, int status) override;
  void kernel_splice_refused(int status) override;

 private:
  // In order; the replay steps run only when the dialogue got that far. kQueued: waiting for a
  // backend slot, no backend connection yet. kSplice: bytes both ways; kDone: the session ended.
  enum class Step : uint8_t {
    kQueued,
    kConnecting,
    kBanner,
    kXclientEhlo,
    kXclient,
    kHelo,
    kMail,
    kRcpt,
    kSplice,
    kDone
  };

  const Config& config() const;
  Server& server() const { return client_.server(); }
  bool handing_off() const { return step_ < Step::kSplice; }
  std::string_view part(uint32_t at, uint32_t size) const {
    return size != 0 ? std::string_view(text_.get() + at, size) : std::string_view();
  }
  std::string_view helo() const { return part(0, helo_size_); }
  std::string_view mail_line() const { return part(helo_size_, mail_size_); }
  std::string_view rcpt_line() const { return part(helo_size_ + mail_size_, rcpt_size_); }

  // 421 4.3.2 when the backend has no slot and the queue no place (or the wait was too long).
  void refuse_busy(const std::string& why);
  void queue_timed_out();
  void connect_backend();  // holding a backend slot
  void backend_reply(std::string_view bytes);
  void backend_step_done();
  void send_backend_step(Step step, std::string_view line);
  void start_splice(const std::string& to_client);
  void splice_to_client(std::string_view bytes);
  // Hands a plain session's bytes to the kernel (splice(2)) when nothing needs to see them.
  void try_kernel_splice();
  // handoff = "xclient", or inside mxscreen's TLS: the client's commands pass through
  // commands_ (command_stream.h).
  void commands_from_client(std::string_view bytes);
  void replies_from_backend(std::string_view bytes);
  std::size_t run_commands(std::string_view input);  // bytes of `input` used
  void resume_commands();
  void command_refused(const protocol::CommandStream::Action& action);
  void backend_failed(const std::string& reason);
  // Gives the backend slot back before the session ends (Postfix closed first).
  void release_slot();
  void arm_timer(std::chrono::milliseconds after);
  void timer_fired();  // connect/reply timeouts while handing off, the idle timeout spliced

  // A queued client costs what a held one does (issue 15): while it waits, this object is the
  // replay text and a ticket; everything that needs a backend connection is in link_.
  HandoffClient& client_;
  Step step_ = Step::kQueued;
  Mode mode_;
  bool esmtp_;
  bool backend_chunking_ = false;  // the backend's EHLO to us offered CHUNKING
  uint32_t queued_at_ = 0;         // uv_now() ms when it queued (mod 2^32: a wait is shorter)
  // The replay in one allocation: the EHLO/HELO argument, the MAIL line, the RCPT line and
  // (set_verified_name) the forward-confirmed PTR name for XCLIENT NAME=.
  uint32_t helo_size_;
  uint32_t mail_size_;
  uint32_t rcpt_size_;
  uint32_t name_size_ = 0;
  std::unique_ptr<char[]> text_;
  uint64_t ticket_ = 0;  // our place in the backend queue; 0 = not queued
  // The backend connection, its reply reader and timer, the splice state and byte counters:
  // made by connect_backend; the backend slot is released when this object dies with it set.
  struct Link;
  std::unique_ptr<Link> link_;
};

}  // namespace mxscreen::proxy
