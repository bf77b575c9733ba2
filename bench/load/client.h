// bench/load/client.h: one simulated SMTP client of the load generator, on libuv. A client
// connects from a given 127.x.y.z source address and plays one role: a silent holder, one of
// four bots (pregreeter, pipeliner, HTTP request, quit after the banner), or a legitimate
// sender doing EHLO/MAIL/RCPT/DATA/QUIT for one or more messages, optionally after STARTTLS
// (a full handshake each session, no resumption: the CPU-bound case of the workers bench). It reads
// every reply and reports how it ended to its Run through the Outcome callback; it owns nothing
// shared.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mxscreen::bench {

enum class Role : uint8_t { kHold, kPregreet, kPipeline, kHttp, kQuit, kLegit };
const char* role_name(Role role);

class Client;

// What a finished client tells its Run.
struct Outcome {
  Client* client = nullptr;  // who (the Run owns it and may destroy it now)
  Role role = Role::kHold;
  bool ok = false;             // completed as a client of its kind expects
  std::string kind;            // "ok", "rejected", "dropped", or an error kind ("refused", ...)
  double connect_ms = -1;      // connect() to established
  double session_ms = 0;       // connect() to close
  int messages = 0;            // messages accepted (250 after DATA)
  uint64_t message_bytes = 0;  // their size
};

// Shared, read-only settings for legitimate senders.
struct LegitScript {
  std::string helo = "loadgen.bench.test";
  std::string mail_from = "bench@loadgen.test";
  std::string rcpt_to = "user@example.test";
  std::string body;           // message with headers, CRLF lines, ends in "\r\n.\r\n"
  uint64_t message_size = 0;  // payload bytes counted per message (body without the dot)
  int per_conn = 1;           // messages per connection
  SSL_CTX* tls = nullptr;     // set: STARTTLS after the first EHLO, then EHLO again
};

class Client {
 public:
  using Done = std::function<void(const Outcome&)>;
  using MessageDone = std::function<void(double latency_ms)>;
  using Connected = std::function<void()>;

  Client(uv_loop_t* loop, Role role, const LegitScript& script, Done done, MessageDone on_message,
         Connected on_connected);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts the connection; `timeout_ms` bounds the whole session (0 = none). On a start
  // failure, Done is called before this returns.
  void start(const sockaddr_in& source, const sockaddr_in& target, uint64_t timeout_ms);
  // Closes the connection now; Done is called with `kind` unless it has been already.
  void abort(const char* kind);
  bool established() const { return established_ && !finished_; }

 private:
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_timeout(uv_timer_t* timer);
  static void on_close(uv_handle_t* handle);

  void connected();
  void received(const char* data, size_t len);
  void reply(int code);
  void legit_reply(int code);
  void bot_reply(int code);
  void send(std::string text);
  void send_body();
  void write_raw(std::string data);
  // STARTTLS: bytes from the server go through the SSL object before the reply parser, and
  // what we send through it before the socket.
  void start_tls();
  void tls_received(const char* data, size_t len);
  void tls_flush();
  void parse(const char* data, size_t len);
  void finish(bool ok, const std::string& kind);

  enum class Step : uint8_t {
    kBanner,
    kEhlo,
    kStartTls,
    kHandshake,
    kMail,
    kRcpt,
    kData,
    kDot,
    kQuit,
    kEof
  };
  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };

  uv_loop_t* loop_;
  Role role_;
  const LegitScript& script_;
  Done done_;
  MessageDone on_message_;
  Connected on_connected_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_connect_t connect_req_{};
  int open_handles_ = 0;
  bool established_ = false;
  bool finished_ = false;
  bool quit_sent_ = false;
  bool rejected_ = false;
  bool passed_ = false;
  Step step_ = Step::kBanner;
  int bot_replies_ = 0;  // non-220 replies a pregreeter has seen
  int messages_ = 0;
  uint64_t started_ns_ = 0;
  uint64_t message_started_ns_ = 0;
  std::string line_;  // the reply line being read
  Outcome outcome_;
  std::unique_ptr<SSL, SslFree> ssl_;
  BIO* tls_in_ = nullptr;   // server bytes for ssl_ (owned by ssl_)
  BIO* tls_out_ = nullptr;  // ssl_'s bytes for the server (owned by ssl_)
};

uint64_t now_ns();

}  // namespace mxscreen::bench
