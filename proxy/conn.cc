// proxy/conn.cc: see conn.h.
#include "proxy/conn.h"

#include <array>
#include <cstring>
#include <memory>

namespace mxscreen::proxy {
namespace {

// One read slab per thread: every read callback consumes its bytes before returning.
constexpr std::size_t kReadSlab = 64 * 1024;
thread_local std::array<char, kReadSlab> g_read_slab;

struct WriteReq {
  uv_write_t req{};
  std::size_t size = 0;
  std::unique_ptr<char[]> data;
};

void close_and_free(uv_handle_t* handle) {
  uv_close(handle, [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
}

}  // namespace

struct Conn::ShutdownReq {
  uv_shutdown_t req{};
  bool close_after = false;
};

Conn::Conn(ConnHandler& handler) : handler_(handler) {}

Conn::~Conn() { close(); }

int Conn::init(uv_loop_t* loop) {
  int rc = uv_tcp_init(loop, tcp_.get());
  if (rc == 0) {
    tcp_.initialized();
    tcp_->data = this;
  }
  return rc;
}

int Conn::connect(const protocol::Endpoint& to) {
  auto ss = sockaddr_from_endpoint(to);
  auto* req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, tcp_.get(), reinterpret_cast<const sockaddr*>(&ss), on_connect_cb);
  if (rc != 0) delete req;
  return rc;
}

void Conn::on_connect_cb(uv_connect_t* req, int status) {
  auto* self = static_cast<Conn*>(req->handle->data);
  delete req;
  if (self) self->handler_.on_connect(*self, status);
}

void Conn::start_reading() {
  if (!tcp_ || reading_) return;
  if (uv_read_start(tcp_.stream(), on_alloc, on_read_cb) == 0) reading_ = true;
}

void Conn::stop_reading() {
  if (!tcp_ || !reading_) return;
  uv_read_stop(tcp_.stream());
  reading_ = false;
}

void Conn::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_read_slab.data(), kReadSlab);
}

void Conn::on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Conn*>(stream->data);
  if (!self || nread == 0) return;
  if (nread == UV_EOF) {
    self->stop_reading();
    self->handler_.on_eof(*self);
  } else if (nread < 0) {
    self->stop_reading();
    self->handler_.on_error(*self, static_cast<int>(nread));
  } else {
    self->handler_.on_read(*self, std::string_view(buf->base, static_cast<size_t>(nread)));
  }
}

bool Conn::write(std::string_view bytes) {
  if (!tcp_ || write_shut_) return false;
  if (bytes.empty()) return true;
  if (queued_ == 0) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), bytes.size());
    int n = uv_try_write(tcp_.stream(), &buf, 1);
    if (n == static_cast<int>(bytes.size())) return true;
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return false;
    }
  }
  auto* wr = new WriteReq;
  wr->size = bytes.size();
  wr->data = std::make_unique<char[]>(bytes.size());
  std::memcpy(wr->data.get(), bytes.data(), bytes.size());
  wr->req.data = wr;
  uv_buf_t buf = uv_buf_init(wr->data.get(), wr->size);
  if (uv_write(&wr->req, tcp_.stream(), &buf, 1, on_write_cb) != 0) {
    delete wr;
    return false;
  }
  queued_ += wr->size;
  return true;
}

void Conn::on_write_cb(uv_write_t* req, int status) {
  auto* wr = static_cast<WriteReq*>(req->data);
  auto* self = static_cast<Conn*>(req->handle->data);
  std::size_t size = wr->size;
  delete wr;
  if (!self) return;
  self->queued_ -= size;
  if (status < 0) {
    if (status != UV_ECANCELED) self->handler_.on_error(*self, status);
    return;
  }
  if (self->queued_ == 0) self->handler_.on_drained(*self);
}

void Conn::shutdown_write() {
  if (!tcp_ || write_shut_) return;
  write_shut_ = true;
  auto* sr = new ShutdownReq;
  if (uv_shutdown(&sr->req, tcp_.stream(), on_shutdown_cb) != 0) {
    delete sr;
    return;
  }
  shutdown_req_ = sr;
}

void Conn::on_shutdown_cb(uv_shutdown_t* req, int) {
  auto* sr = reinterpret_cast<ShutdownReq*>(req);
  auto* handle = reinterpret_cast<uv_handle_t*>(req->handle);
  if (auto* self = static_cast<Conn*>(handle->data)) self->shutdown_req_ = nullptr;
  if (sr->close_after && !uv_is_closing(handle)) close_and_free(handle);
  delete sr;
}

void Conn::close() {
  reading_ = false;
  shutdown_req_ = nullptr;  // closing cancels it; its callback frees it
  tcp_.close();
}

void Conn::close_after_flush() {
  reading_ = false;
  if (!tcp_) return;
  if (queued_ == 0) {
    close();
    return;
  }
  // Hand the handle to the (new or pending) half-close, whose callback closes and frees it
  // once every queued write is out.
  if (!shutdown_req_) shutdown_write();
  if (!shutdown_req_) {
    close();
    return;
  }
  shutdown_req_->close_after = true;
  shutdown_req_ = nullptr;
  tcp_->data = nullptr;
  tcp_.release();
}

void Conn::reset() {
  reading_ = false;
  tcp_.reset();
}

}  // namespace mxscreen::proxy
