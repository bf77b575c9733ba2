// proxy/uv_handle.h: libuv handles owned by C++ objects. The handle lives on the heap; the
// owner's destructor closes it and the close callback frees it, so callbacks still queued in
// the loop find handle->data == nullptr and return. Also: sockaddr <-> protocol::Endpoint.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "protocol/address.h"

namespace mxscreen::proxy {

template <typename H>
class UvHandle {
 public:
  UvHandle() : handle_(new H{}) {}
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  H* get() const { return handle_; }
  H* operator->() const { return handle_; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }

  // Call after a successful uv_*_init: from then on the handle must be closed, not freed.
  void initialized() { initialized_ = true; }
  bool is_initialized() const { return handle_ && initialized_; }

  // Closes the handle (frees it in the close callback) and forgets it.
  void close() {
    if (!handle_) return;
    handle_->data = nullptr;
    if (initialized_) {
      if (!uv_is_closing(base())) uv_close(base(), &UvHandle::free_handle);
    } else {
      delete handle_;
    }
    handle_ = nullptr;
  }

  // Gives up ownership without closing; whoever takes the raw handle must close it.
  H* release() {
    H* h = handle_;
    handle_ = nullptr;
    return h;
  }

  // TCP only: close with RST instead of FIN (a closed-port look for the fake MX).
  void reset() {
    if constexpr (std::is_same_v<H, uv_tcp_t>) {
      if (handle_ && initialized_ && !uv_is_closing(base())) {
        handle_->data = nullptr;
        if (uv_tcp_close_reset(handle_, &UvHandle::free_handle) == 0) {
          handle_ = nullptr;
          return;
        }
      }
    }
    close();
  }

 private:
  static void free_handle(uv_handle_t* h) { delete reinterpret_cast<H*>(h); }

  H* handle_;
  bool initialized_ = false;
};

// A libuv timer that calls a member function of its owner: the uv_timer_init / ->data / cast
// sequence, written once. init<&Owner::method>(loop, owner) once, then start and stop at will.
// Closing or destroying the Timer stops it for good: a callback already queued in the loop
// finds no owner and does nothing. The owner holds the Timer (as a member), so it outlives it.
class Timer {
 public:
  // False when libuv refuses the handle; the Timer then stays inert (start does nothing).
  // keeps_loop_alive = false: this timer alone does not keep uv_run() going (uv_unref).
  template <auto Method, typename Owner>
  bool init(uv_loop_t* loop, Owner* owner, bool keeps_loop_alive = true) {
    if (!handle_ || handle_.is_initialized()) return false;
    if (uv_timer_init(loop, handle_.get()) != 0) {
      handle_.close();
      return false;
    }
    handle_.initialized();
    handle_->data = owner;
    callback_ = [](uv_timer_t* t) {
      if (auto* o = static_cast<Owner*>(t->data)) std::invoke(Method, o);
    };
    if (!keeps_loop_alive) uv_unref(handle_.base());
    return true;
  }
  // (Re)starts it: fires after `after`, then every `repeat` unless that is zero.
  void start(std::chrono::milliseconds after, std::chrono::milliseconds repeat = {}) {
    if (*this) uv_timer_start(handle_.get(), callback_, millis(after), millis(repeat));
  }
  void stop() {
    if (*this) uv_timer_stop(handle_.get());
  }
  bool active() const { return *this && uv_is_active(handle_.base()) != 0; }
  explicit operator bool() const { return handle_.is_initialized() && callback_ != nullptr; }
  void close() {
    handle_.close();
    callback_ = nullptr;
  }

 private:
  static uint64_t millis(std::chrono::milliseconds ms) {
    return ms.count() > 0 ? static_cast<uint64_t>(ms.count()) : 0;
  }
  UvHandle<uv_timer_t> handle_;
  uv_timer_cb callback_ = nullptr;
};

protocol::Endpoint endpoint_from_sockaddr(const sockaddr* sa);
sockaddr_storage sockaddr_from_endpoint(const protocol::Endpoint& endpoint);
// Peer address of a connected TCP handle; nullopt (and the libuv error in *error) when the
// kernel cannot say, e.g. the peer reset the connection before it was accepted (ENOTCONN).
std::optional<protocol::Endpoint> tcp_peer(const uv_tcp_t* tcp, int* error = nullptr);
// Local address of a connected TCP handle.
protocol::Endpoint tcp_local(const uv_tcp_t* tcp);
std::string uv_error(int code);

}  // namespace mxscreen::proxy
