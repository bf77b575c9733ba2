// proxy/smtp_probe.h: a blocking SMTP client with timeouts for the one-shot checks that run
// outside any event loop (`mxscreen ctl check`, `mxscreen --check-config`): connect, send,
// read one complete reply. Every read is bounded in bytes and time.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address.h"

namespace mxscreen::proxy {

// A connected TCP socket with send and receive timeouts of `timeout_s`, or -1 with `error`.
int open_tcp(const protocol::Endpoint& at, int timeout_s, std::string* error);
bool send_all(int fd, std::string_view data);

struct ProbeReply {
  int code = 0;
  std::vector<std::string> lines;  // text after "NNN-"/"NNN "
  std::string first_line() const;  // "NNN text" of the first line, for messages
};

// Reads one complete reply (at most 64 KiB). nullopt with `error` ("connection closed", "no
// answer in time", "malformed reply") otherwise. Bytes after the reply are kept in `*rest`.
std::optional<ProbeReply> read_reply(int fd, std::string* rest, std::string* error);

}  // namespace mxscreen::proxy
