// proxy/kernel_splice.cc: see kernel_splice.h.
#include "proxy/kernel_splice.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace mxscreen::proxy {
namespace {

// Per wake-up and direction at most this much, so that one fast sender does not starve the
// loop (epoll is level-triggered: what is left wakes us again on the next turn).
constexpr std::size_t kChunk = 64 * 1024;
constexpr int kChunksPerWake = 16;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

void close_fd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

}  // namespace

KernelSplice::KernelSplice(uv_loop_t* loop, KernelSpliceHandler& handler, Counters counters)
    : loop_(loop), handler_(handler), counters_(counters) {}

std::unique_ptr<KernelSplice> KernelSplice::start(uv_loop_t* loop, uv_tcp_t* client,
                                                  uv_tcp_t* backend, KernelSpliceHandler& handler,
                                                  Counters counters, int* status) {
  uv_os_fd_t client_fd = -1;
  uv_os_fd_t backend_fd = -1;
  *status = uv_fileno(reinterpret_cast<uv_handle_t*>(client), &client_fd);
  if (*status == 0) *status = uv_fileno(reinterpret_cast<uv_handle_t*>(backend), &backend_fd);
  if (*status != 0) return nullptr;
  std::unique_ptr<KernelSplice> splice(new KernelSplice(loop, handler, counters));
  if (!splice->open(client_fd, backend_fd, status)) return nullptr;
  return splice;
}

bool KernelSplice::open(int client_fd, int backend_fd, int* status) {
  int client_pipe[2] = {-1, -1};
  int backend_pipe[2] = {-1, -1};
  client_fd_ = ::fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
  backend_fd_ = client_fd_ < 0 ? -1 : ::fcntl(backend_fd, F_DUPFD_CLOEXEC, 0);
  if (backend_fd_ < 0 || ::pipe2(client_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    *status = -errno;
    return false;
  }
  to_backend_ = {client_fd_, backend_fd_, client_pipe[0], client_pipe[1]};
  to_backend_.counter = counters_.to_backend;
  to_backend_.client_side = true;
  if (::pipe2(backend_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    *status = -errno;
    return false;
  }
  to_client_ = {backend_fd_, client_fd_, backend_pipe[0], backend_pipe[1]};
  to_client_.counter = counters_.to_client;
  for (auto [poll, fd] : {std::pair{&client_poll_, client_fd_}, {&backend_poll_, backend_fd_}}) {
    *status = uv_poll_init(loop_, poll->get(), fd);
    if (*status != 0) return false;
    poll->initialized();
    (*poll)->data = this;
  }
  watch();  // both sockets readable: the loop wakes us when there is something to move
  return true;
}

KernelSplice::~KernelSplice() {
  *alive_ = false;
  // Closing a poll handle stops it and takes its descriptor out of epoll at once, so the
  // descriptors can go now.
  client_poll_.close();
  backend_poll_.close();
  for (int* fd : {&to_backend_.pipe_read, &to_backend_.pipe_write, &to_client_.pipe_read,
                  &to_client_.pipe_write, &client_fd_, &backend_fd_}) {
    close_fd(fd);
  }
}

void KernelSplice::on_poll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<KernelSplice*>(handle->data);
  if (!self) return;
  if (status < 0) {
    self->handler_.kernel_splice_error(handle == self->client_poll_.get(), status);
    return;
  }
  self->pump();
}

bool KernelSplice::pump() {
  auto alive = alive_;
  for (Direction* d : {&to_backend_, &to_client_}) {
    bool writing = false;
    int rc = pump(*d, &writing);
    if (rc != 0) {
      // The side that failed: reading `from` or writing `to`.
      bool failed_client_side = writing ? !d->client_side : d->client_side;
      if (!moved_ && (rc == UV_EINVAL || rc == UV_ENOSYS)) {
        handler_.kernel_splice_refused(rc);
      } else {
        handler_.kernel_splice_error(failed_client_side, rc);
      }
      return false;
    }
    if (d->eof && d->in_pipe == 0 && !d->done) {
      d->done = true;
      ::shutdown(d->to, SHUT_WR);  // the FIN goes on, as on the copy path
      handler_.kernel_splice_eof(d->client_side);
      if (!*alive) return false;
    }
  }
  watch();
  return true;
}

int KernelSplice::pump(Direction& d, bool* writing) {
  for (int chunks = 0;;) {
    if (d.in_pipe > 0) {
      ssize_t n = ::splice(d.pipe_read, nullptr, d.to, nullptr, d.in_pipe, kSpliceFlags);
      if (n > 0) {
        d.in_pipe -= static_cast<std::size_t>(n);
        *d.counter += static_cast<uint64_t>(n);
        *counters_.last_activity = uv_now(loop_);
        moved_ = true;
        d.blocked = false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        d.blocked = true;  // back-pressure: `from` is not read until `to` takes the pipe
        return 0;
      }
      *writing = true;
      return n < 0 ? -errno : UV_EPIPE;
    }
    // The pipe is empty here: leaving now leaves nothing stranded.
    if (d.eof || chunks == kChunksPerWake) return 0;
    ssize_t n = ::splice(d.from, nullptr, d.pipe_write, nullptr, kChunk, kSpliceFlags);
    if (n > 0) {
      d.in_pipe += static_cast<std::size_t>(n);
      ++chunks;
      continue;
    }
    if (n == 0) {
      d.eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return -errno;
  }
}

void KernelSplice::watch() {
  // A direction reads its source only while its pipe is empty; it waits for its destination
  // to be writable only while it is blocked.
  auto wants_read = [](const Direction& d) { return !d.eof && d.in_pipe == 0; };
  int client = (wants_read(to_backend_) ? UV_READABLE : 0) | (to_client_.blocked ? UV_WRITABLE : 0);
  int backend =
      (wants_read(to_client_) ? UV_READABLE : 0) | (to_backend_.blocked ? UV_WRITABLE : 0);
  for (auto [poll, now, want] : {std::tuple{&client_poll_, &client_events_, client},
                                 std::tuple{&backend_poll_, &backend_events_, backend}}) {
    if (*now == want) continue;
    *now = want;
    if (want == 0) {
      uv_poll_stop(poll->get());
    } else {
      uv_poll_start(poll->get(), want, on_poll);
    }
  }
}

}  // namespace mxscreen::proxy
