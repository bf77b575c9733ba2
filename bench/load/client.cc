// bench/load/client.cc: the simulated SMTP clients of client.h. Replies are read line by line;
// a reply is complete at its "NNN " line (RFC 5321 section 4.2.1). Each role reacts to reply
// codes only, so it copes with postscreen's and mxscreen's different dialogues alike.
#include "bench/load/client.h"

#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

namespace mxscreen::bench {

namespace {

// One read buffer for every client: the loop is single-threaded and on_read consumes it
// before the next read.
char g_read_buffer[256 * 1024];

struct WriteReq {
  uv_write_t req{};
  std::string data;  // empty when the buffer is borrowed (the shared message body)
};

const char* error_kind(int status) {
  switch (status) {
    case UV_ECONNREFUSED:
      return "refused";
    case UV_ECONNRESET:
      return "reset";
    case UV_ETIMEDOUT:
      return "connect_timeout";
    case UV_EADDRNOTAVAIL:
      return "addr_not_avail";
    case UV_EADDRINUSE:
      return "addr_in_use";
    case UV_EMFILE:
    case UV_ENFILE:
      return "fd_limit";
    case UV_EPIPE:
      return "broken_pipe";
    default:
      return "socket_error";
  }
}

double ms_since(uint64_t start_ns) { return static_cast<double>(now_ns() - start_ns) / 1e6; }

}  // namespace

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kHold:
      return "hold";
    case Role::kPregreet:
      return "pregreet";
    case Role::kPipeline:
      return "pipeline";
    case Role::kHttp:
      return "http";
    case Role::kQuit:
      return "quit";
    case Role::kLegit:
      return "legit";
  }
  return "?";
}

Client::Client(uv_loop_t* loop, Role role, const LegitScript& script, Done done,
               MessageDone on_message, Connected on_connected)
    : loop_(loop),
      role_(role),
      script_(script),
      done_(std::move(done)),
      on_message_(std::move(on_message)),
      on_connected_(std::move(on_connected)) {
  outcome_.role = role;
  outcome_.client = this;
  tcp_.data = this;
  timer_.data = this;
  connect_req_.data = this;
}

void Client::start(const sockaddr_in& source, const sockaddr_in& target, uint64_t timeout_ms) {
  started_ns_ = now_ns();
  message_started_ns_ = started_ns_;
  uv_timer_init(loop_, &timer_);
  ++open_handles_;
  int rc = uv_tcp_init_ex(loop_, &tcp_, AF_INET);
  if (rc == 0) {
    ++open_handles_;
    uv_os_fd_t fd = -1;
    uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd);
#ifdef IP_BIND_ADDRESS_NO_PORT
    // Let connect() pick the port per 4-tuple, so one source address serves many targets.
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    uv_tcp_nodelay(&tcp_, 1);
    rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&source), 0);
    if (rc == 0) {
      rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&target),
                          &Client::on_connect);
    }
  }
  if (rc != 0) {
    finish(false, error_kind(rc));
    return;
  }
  if (timeout_ms > 0) uv_timer_start(&timer_, &Client::on_timeout, timeout_ms, 0);
}

void Client::abort(const char* kind) { finish(false, kind); }

void Client::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<Client*>(req->data);
  if (self->finished_) return;
  if (status != 0) {
    self->finish(false, error_kind(status));
    return;
  }
  self->connected();
}

void Client::connected() {
  established_ = true;
  outcome_.connect_ms = ms_since(started_ns_);
  if (on_connected_) on_connected_();
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &Client::on_alloc, &Client::on_read);
  // A pregreeter talks before the server's banner (postscreen's PREGREET test).
  if (role_ == Role::kPregreet) send("EHLO bot.loadgen.test\r\n");
}

void Client::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_read_buffer, sizeof g_read_buffer);
}

void Client::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Client*>(stream->data);
  if (self->finished_) return;
  if (nread > 0) {
    self->received(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (nread == 0) return;
  // EOF or error: how the session ended depends on where it was.
  if (nread != UV_EOF) {
    self->finish(self->quit_sent_ || self->rejected_, self->rejected_ ? "rejected"
                                                      : self->quit_sent_
                                                          ? "ok"
                                                          : error_kind(static_cast<int>(nread)));
    return;
  }
  if (self->role_ == Role::kLegit) {
    if (self->step_ == Step::kQuit || self->step_ == Step::kEof) {
      self->finish(true, "ok");
    } else {
      self->finish(false, self->rejected_ ? "rejected" : "eof_early");
    }
    return;
  }
  if (self->role_ == Role::kHold) {
    self->finish(false, "closed_by_server");
    return;
  }
  // Bots: a rejection or a silent drop both count as "turned away".
  self->finish(true, self->rejected_ ? "rejected" : self->passed_ ? "passed" : "dropped");
}

void Client::received(const char* data, size_t len) {
  if (ssl_) {
    tls_received(data, len);
  } else {
    parse(data, len);
  }
}

void Client::start_tls() {
  ssl_.reset(SSL_new(script_.tls));
  tls_in_ = BIO_new(BIO_s_mem());
  tls_out_ = BIO_new(BIO_s_mem());
  if (!ssl_ || tls_in_ == nullptr || tls_out_ == nullptr) {
    finish(false, "tls_setup");
    return;
  }
  BIO_set_mem_eof_return(tls_in_, -1);
  SSL_set_bio(ssl_.get(), tls_in_, tls_out_);
  SSL_set_connect_state(ssl_.get());
  step_ = Step::kHandshake;
  tls_received(nullptr, 0);
}

void Client::tls_received(const char* data, size_t len) {
  if (len > 0) BIO_write(tls_in_, data, static_cast<int>(len));
  if (step_ == Step::kHandshake) {
    int rc = SSL_do_handshake(ssl_.get());
    tls_flush();
    if (rc != 1) {
      int err = SSL_get_error(ssl_.get(), rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) finish(false, "tls_error");
      return;
    }
    step_ = Step::kEhlo;  // RFC 3207: the client starts over with EHLO
    send("EHLO " + script_.helo + "\r\n");
  }
  char plain[16 * 1024];
  for (;;) {
    int n = SSL_read(ssl_.get(), plain, sizeof plain);
    if (n <= 0) break;
    parse(plain, static_cast<size_t>(n));
    if (finished_) return;
  }
  tls_flush();  // alerts, key updates
}

void Client::tls_flush() {
  char* data = nullptr;
  long pending = BIO_get_mem_data(tls_out_, &data);
  if (pending <= 0) return;
  std::string out(data, static_cast<size_t>(pending));
  (void)BIO_reset(tls_out_);
  write_raw(std::move(out));
}

void Client::parse(const char* data, size_t len) {
  for (size_t i = 0; i < len && !finished_; ++i) {
    char c = data[i];
    if (c != '\n') {
      if (line_.size() < 1024) line_.push_back(c);
      continue;
    }
    // A reply line: "NNN-text" continues, "NNN text" or "NNN" ends the reply.
    const std::string line = std::move(line_);
    line_.clear();
    if (line.size() < 3) continue;
    const bool last = line.size() == 3 || line[3] == ' ' || line[3] == '\r';
    int code = 0;
    for (int k = 0; k < 3; ++k) {
      if (line[k] < '0' || line[k] > '9') {
        code = -1;
        break;
      }
      code = code * 10 + (line[k] - '0');
    }
    if (code < 0) {
      // Not SMTP (an HTTP answer, say): a legitimate sender gives up, a bot just listens.
      if (role_ == Role::kLegit) finish(false, "bad_reply");
      continue;
    }
    if (last) reply(code);
  }
}

void Client::reply(int code) {
  if (role_ == Role::kHold) return;  // a holder never answers
  if (role_ == Role::kLegit) {
    legit_reply(code);
  } else {
    bot_reply(code);
  }
}

void Client::legit_reply(int code) {
  auto fail = [&](const char* where) {
    rejected_ = true;
    finish(false, std::string(where) + "_" + std::to_string(code / 100) + "xx");
  };
  switch (step_) {
    case Step::kBanner:
      if (code != 220) return fail("banner");
      send("EHLO " + script_.helo + "\r\n");
      step_ = Step::kEhlo;
      return;
    case Step::kEhlo:
      if (code != 250) return fail("ehlo");
      if (script_.tls != nullptr && !ssl_) {
        send("STARTTLS\r\n");
        step_ = Step::kStartTls;
        return;
      }
      [[fallthrough]];
    case Step::kMail:
      if (step_ == Step::kMail && code != 250) return fail("mail");
      if (step_ == Step::kEhlo) {
        send("MAIL FROM:<" + script_.mail_from + ">\r\n");
        step_ = Step::kMail;
      } else {
        send("RCPT TO:<" + script_.rcpt_to + ">\r\n");
        step_ = Step::kRcpt;
      }
      return;
    case Step::kStartTls:
      if (code != 220) return fail("starttls");
      start_tls();
      return;
    case Step::kHandshake:
      return;
    case Step::kRcpt:
      if (code != 250 && code != 251) return fail("rcpt");
      send("DATA\r\n");
      step_ = Step::kData;
      return;
    case Step::kData:
      if (code != 354) return fail("data");
      send_body();
      step_ = Step::kDot;
      return;
    case Step::kDot:
      if (code != 250) return fail("dot");
      ++messages_;
      outcome_.messages = messages_;
      outcome_.message_bytes += script_.message_size;
      if (on_message_) on_message_(ms_since(message_started_ns_));
      message_started_ns_ = now_ns();
      if (messages_ < script_.per_conn) {
        send("MAIL FROM:<" + script_.mail_from + ">\r\n");
        step_ = Step::kMail;
      } else {
        send("QUIT\r\n");
        quit_sent_ = true;
        step_ = Step::kQuit;
      }
      return;
    case Step::kQuit:
      // 221: wait for the server to close (it owns TIME_WAIT then, as with a real MTA).
      step_ = Step::kEof;
      return;
    case Step::kEof:
      return;
  }
}

void Client::bot_reply(int code) {
  if (code >= 400) rejected_ = true;
  if (code == 221 || quit_sent_) return;  // waiting for the close
  if (code >= 400) {
    send("QUIT\r\n");
    quit_sent_ = true;
    return;
  }
  switch (role_) {
    case Role::kPregreet:
      // Its EHLO went out before the banner; 220 lines are the banner, not replies to it.
      if (code == 220) return;
      ++bot_replies_;
      if (bot_replies_ == 1) {
        send("MAIL FROM:<bot@bot.loadgen.test>\r\n");
      } else if (bot_replies_ == 2) {
        send("RCPT TO:<user@example.test>\r\n");
      } else {
        passed_ = true;
        send("QUIT\r\n");
        quit_sent_ = true;
      }
      return;
    case Role::kPipeline:
      if (code == 220 && bot_replies_++ == 0) {
        // The whole envelope in one packet, without waiting for PIPELINING to be offered.
        send(
            "EHLO bot.loadgen.test\r\nMAIL FROM:<bot@bot.loadgen.test>\r\n"
            "RCPT TO:<user@example.test>\r\nQUIT\r\n");
        quit_sent_ = true;
      }
      return;
    case Role::kHttp:
      if (code == 220 && bot_replies_++ == 0) {
        send("GET / HTTP/1.1\r\nHost: mx.example.test\r\nUser-Agent: loadgen\r\n\r\n");
      }
      return;
    case Role::kQuit:
      if (code == 220) {
        send("QUIT\r\n");
        quit_sent_ = true;
      }
      return;
    default:
      return;
  }
}

void Client::send(std::string text) {
  if (ssl_) {
    SSL_write(ssl_.get(), text.data(), static_cast<int>(text.size()));
    tls_flush();
    return;
  }
  write_raw(std::move(text));
}

void Client::write_raw(std::string text) {
  auto req = std::make_unique<WriteReq>();
  req->data = std::move(text);
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  int rc = uv_write(
      &req->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
      [](uv_write_t* w, int) { std::unique_ptr<WriteReq>(static_cast<WriteReq*>(w->data)); });
  if (rc == 0) {
    (void)req.release();  // owned by the callback from here
  } else {
    finish(false, error_kind(rc));
  }
}

void Client::send_body() {
  if (ssl_) {
    send(script_.body);
    return;
  }
  // The body is shared by every client and outlives the loop: borrow it, no copy.
  auto req = std::make_unique<WriteReq>();
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(const_cast<char*>(script_.body.data()),
                             static_cast<unsigned>(script_.body.size()));
  int rc = uv_write(
      &req->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
      [](uv_write_t* w, int) { std::unique_ptr<WriteReq>(static_cast<WriteReq*>(w->data)); });
  if (rc == 0) {
    (void)req.release();
  } else {
    finish(false, error_kind(rc));
  }
}

void Client::on_timeout(uv_timer_t* timer) {
  auto* self = static_cast<Client*>(timer->data);
  self->finish(false, "timeout");
}

void Client::finish(bool ok, const std::string& kind) {
  if (finished_) return;
  finished_ = true;
  outcome_.ok = ok;
  outcome_.kind = kind;
  outcome_.session_ms = ms_since(started_ns_);
  if (open_handles_ == 0) {
    // Nothing was opened: report at once.
    Done done = std::move(done_);
    Outcome outcome = outcome_;
    done(outcome);
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Client::on_close);
  if (open_handles_ == 2) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Client::on_close);
}

void Client::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Client*>(handle->data);
  if (--self->open_handles_ > 0) return;
  // Last handle closed: the Run may destroy this client inside `done`, so touch nothing after.
  Done done = std::move(self->done_);
  Outcome outcome = self->outcome_;
  done(outcome);
}

}  // namespace mxscreen::bench
