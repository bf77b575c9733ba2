// proxy/control.h: the admin socket (issue 6). The running process listens on a Unix socket,
// server.state_dir/mxscreen.ctl, mode 0600 (its own user and root only). One request per
// connection, one line: "bans", "unban ADDR", "ban ADDR DURATION", "stats", the greylist
// and cache requests of ctl_state.h, and "explain ADDR ..." (explain.h). The answer is zero or
// more lines of text, then "OK <summary>" or "ERR <message>", then the server closes.
// `mxscreen ctl` (run_ctl) is the client.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/address.h"
#include "proxy/ctl_state.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

inline constexpr const char* kControlSocketName = "mxscreen.ctl";
std::string control_socket_path(const std::string& state_dir);

class Server;

// One request line as the admin socket reads it (its only parser of untrusted bytes; kept
// apart from the socket so that tests/fuzz/control_request_fuzz.cc can feed it).
struct ControlRequest {
  enum class Kind { kBans, kUnban, kBan, kStats, kState, kInvalid };
  Kind kind = Kind::kInvalid;
  protocol::IpAddress address;      // unban, ban
  std::chrono::seconds duration{};  // ban
  StateRequest state;               // greylist ..., cache ... (ctl_state.h)
  std::string error;                // the "ERR ..." line when kInvalid
};
ControlRequest parse_control_request(const std::string& line);

class ControlServer {
 public:
  // Bytes of the request line: room for a greylist triplet (two 256-byte paths) and a cursor.
  static constexpr std::size_t kMaxRequest = 4096;
  // Admin connections at once: server.ctl_max_connections (more are answered "ERR busy" and
  // closed); each must be answered within server.ctl_timeout or is closed. Both are counted
  // in mxscreen_admin_connections_closed_total{socket="ctl"}.

  ControlServer(uv_loop_t* loop, Server& server);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and listens at `path` (a stale socket file left by a crash is replaced). Returns 0
  // or a libuv error.
  int start(const std::string& path);
  void stop();

  struct Client;

 private:
  static void on_connection(uv_stream_t* listener, int status);
  void handle(Client* client, const std::string& line);
  void answer(Client* client, const std::string& text);
  void drop(Client* client);

  uv_loop_t* loop_;
  Server& server_;
  std::string path_;
  UvHandle<uv_pipe_t> listener_;
  std::vector<std::unique_ptr<Client>> clients_;
};

// "2026-12-02T04:00:00Z" for epoch seconds: the time format of ctl answers.
std::string utc_time(int64_t epoch);

// `mxscreen ctl --config FILE <request...>`: sends the request to the running process, prints
// the answer. Returns the exit code: 0 OK, 1 ERR or not running, 2 bad request.
// `timeout_after`: how long to wait for the answer (explain waits for DNS lookups).
int run_ctl(const std::string& state_dir, const std::vector<std::string>& request,
            std::chrono::seconds timeout_after = std::chrono::seconds(10));

}  // namespace mxscreen::proxy
