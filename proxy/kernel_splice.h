// proxy/kernel_splice.h: a plain spliced session's bytes moved by the kernel (Linux splice(2))
// instead of being copied through mxscreen: per direction, socket -> pipe -> socket, never
// touching user space (DESIGN.md step 6). It is given the two connected sockets once the
// session's own write queues are empty and nobody needs to read the bytes (no TLS, no XCLIENT
// command reading), and keeps what the copy path gives: back-pressure (a direction stops
// reading while its pipe cannot drain), half-close (a FIN goes on once its pipe is empty),
// activity time and byte counters for the idle timeout and the summary line. The sockets are
// watched through dup()s of their descriptors, so libuv's own handles stay untouched and are
// closed by their owners as before.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class KernelSpliceHandler {
 public:
  virtual ~KernelSpliceHandler() = default;
  // `client_side` finished sending (EOF) and its FIN went on to the other side.
  virtual void kernel_splice_eof(bool client_side) = 0;
  // Reading or writing `client_side`'s socket failed (a libuv error code).
  virtual void kernel_splice_error(bool client_side, int status) = 0;
  // The kernel refused splice(2) before any byte moved: go back to the copy path.
  virtual void kernel_splice_refused(int status) = 0;
};

class KernelSplice {
 public:
  struct Counters {
    uint64_t* to_backend;  // bytes client -> backend
    uint64_t* to_client;   // bytes backend -> client
    uint64_t* last_activity;
  };

  // Nullptr (and *status set) when a pipe or a descriptor cannot be had (EMFILE...): the
  // caller stays on the copy path.
  static std::unique_ptr<KernelSplice> start(uv_loop_t* loop, uv_tcp_t* client, uv_tcp_t* backend,
                                             KernelSpliceHandler& handler, Counters counters,
                                             int* status);
  ~KernelSplice();
  KernelSplice(const KernelSplice&) = delete;
  KernelSplice& operator=(const KernelSplice&) = delete;

 private:
  struct Direction {
    int from = -1;  // socket descriptors (dups), not owned here
    int to = -1;
    int pipe_read = -1;
    int pipe_write = -1;
    std::size_t in_pipe = 0;  // bytes read from `from` not yet written to `to`
    bool blocked = false;     // `to` would block: wait until it is writable
    bool eof = false;         // `from` sent its FIN
    bool done = false;        // and it went on to `to`
    uint64_t* counter = nullptr;
    bool client_side = false;  // `from` is the client
  };

  KernelSplice(uv_loop_t* loop, KernelSpliceHandler& handler, Counters counters);
  bool open(int client_fd, int backend_fd, int* status);
  static void on_poll(uv_poll_t* handle, int status, int events);
  // Moves what can be moved now in both directions; false once the handler was called for an
  // error or a refusal (this object may be gone).
  bool pump();
  // One direction: 0 = fine, else a libuv error code (negative errno); *writing tells whether
  // writing `to` (else reading `from`) failed.
  int pump(Direction& d, bool* writing);
  void watch();

  uv_loop_t* loop_;
  KernelSpliceHandler& handler_;
  Counters counters_;
  int client_fd_ = -1;  // dup of the client socket
  int backend_fd_ = -1;
  Direction to_backend_, to_client_;
  UvHandle<uv_poll_t> client_poll_, backend_poll_;
  int client_events_ = 0, backend_events_ = 0;  // what each poll watches now
  bool moved_ = false;                          // a byte went through: no going back
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxscreen::proxy
