// proxy/policy_server.h: the Postfix policy service (SMTPD_POLICY_README, postgrey's
// protocol) on policy.listen. The backend smtpd asks it about every RCPT of a spliced session
// (check_policy_service in smtpd_recipient_restrictions); it greylists the triplet from the
// same store and rules as the pre-handoff RCPT (greylisting.h) and answers DEFER_IF_PERMIT or
// DUNNO. Runs on the first worker's loop. Bounded: connections, request size, idle time; a
// failing store fails open (DUNNO).
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "protocol/address.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Server;

class PolicyServer {
 public:
  PolicyServer(uv_loop_t* loop, Server& server);
  ~PolicyServer();
  PolicyServer(const PolicyServer&) = delete;
  PolicyServer& operator=(const PolicyServer&) = delete;

  // Binds and listens; 0 or a libuv error.
  int start(const protocol::Endpoint& at);
  std::size_t connections() const { return connections_.size(); }

  class Connection;
  // Called by a connection when it is closed; it is freed here.
  void closed(Connection* connection);

 private:
  static void on_connection(uv_stream_t* listener, int status);
  void accept_one();
  void update_gauge();

  uv_loop_t* loop_;
  Server& server_;
  UvHandle<uv_tcp_t> listener_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> dead_;  // closed, freed on the next loop turn
  UvHandle<uv_check_t> reaper_;
  bool full_logged_ = false;  // one log line per stretch of refusals at max_connections
};

}  // namespace mxscreen::proxy
