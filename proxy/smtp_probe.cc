// proxy/smtp_probe.cc: see smtp_probe.h.
#include "proxy/smtp_probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/escape.h"
#include "protocol/reply.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

int open_tcp(const protocol::Endpoint& at, int timeout_s, std::string* error) {
  auto ss = sockaddr_from_endpoint(at);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  socklen_t len = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string ProbeReply::first_line() const {
  return std::to_string(code) + " " + protocol::printable(lines.empty() ? "" : lines[0], 120);
}

std::optional<ProbeReply> read_reply(int fd, std::string* rest, std::string* error) {
  protocol::ReplyReader reader;
  std::string buffered = std::move(*rest);
  rest->clear();
  char chunk[4096];
  for (;;) {
    if (!buffered.empty()) {
      size_t used = 0;
      auto status = reader.feed(buffered, &used);
      buffered.erase(0, used);
      if (status == protocol::ReplyReader::Status::kDone) {
        *rest = std::move(buffered);
        return ProbeReply{reader.code(), reader.lines()};
      }
      if (status == protocol::ReplyReader::Status::kInvalid) {
        *error = "malformed reply";
        return std::nullopt;
      }
    }
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) {
      *error = "connection closed";
      return std::nullopt;
    }
    if (n < 0) {
      *error = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : std::strerror(errno);
      return std::nullopt;
    }
    buffered.assign(chunk, static_cast<size_t>(n));
  }
}

}  // namespace mxscreen::proxy
