// proxy/conn.h: one TCP connection with a bounded write queue. Reads are delivered to a
// handler from one loop-wide read slab (the handler must use or copy the bytes at once), so
// a silent held client costs no read buffer. Writes are tried at once; what the kernel does
// not take is queued, and the queue's size tells the owner when to stop reading the other side.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string_view>

#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Conn;

class ConnHandler {
 public:
  virtual ~ConnHandler() = default;
  virtual void on_read(Conn& conn, std::string_view bytes) = 0;
  virtual void on_eof(Conn& conn) = 0;
  virtual void on_error(Conn& conn, int status) = 0;
  // The write queue fell back to empty (resume reading the peer that feeds it).
  virtual void on_drained(Conn& /*conn*/) {}
  // connect() finished; status 0 or a libuv error.
  virtual void on_connect(Conn& /*conn*/, int /*status*/) {}
};

class Conn {
 public:
  explicit Conn(ConnHandler& handler);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int init(uv_loop_t* loop);  // before accept() or connect()
  uv_tcp_t* tcp() const { return tcp_.get(); }
  uv_stream_t* stream() const { return tcp_.stream(); }
  int connect(const protocol::Endpoint& to);

  void start_reading();
  void stop_reading();
  bool reading() const { return reading_; }

  // Copies what the kernel does not take at once. Returns false once the connection is dead.
  bool write(std::string_view bytes);
  std::size_t queued() const { return queued_; }

  // Half-close: FIN after every queued write went out.
  void shutdown_write();
  bool write_shut() const { return write_shut_; }

  // Closes now, dropping anything queued.
  void close();
  // Closes once the (small) queue is flushed; a peer that does not read gets cut off by the
  // kernel's retransmission limits, never by us holding the session open.
  void close_after_flush();
  // Closes with a TCP RST.
  void reset();
  bool open() const { return static_cast<bool>(tcp_); }

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write_cb(uv_write_t* req, int status);
  static void on_connect_cb(uv_connect_t* req, int status);
  static void on_shutdown_cb(uv_shutdown_t* req, int status);

  ConnHandler& handler_;
  UvHandle<uv_tcp_t> tcp_;
  struct ShutdownReq;
  ShutdownReq* shutdown_req_ = nullptr;  // pending half-close, owned by libuv until its callback
  std::size_t queued_ = 0;
  bool reading_ = false;
  bool write_shut_ = false;
};

}  // namespace mxscreen::proxy
