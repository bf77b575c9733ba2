// proxy/session.h: one client, from accept to close (DESIGN.md "A session's life"): the
// optional PROXY header of an upstream balancer, the connect decision, the greet test, the
// handoff to the backend (identity, banner, XCLIENT) and the splice both ways.
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "checks/pregreet.h"
#include "protocol/address.h"
#include "protocol/reply.h"
#include "proxy/conn.h"
#include "proxy/server.h"

namespace mxscreen::proxy {

class Session : public ConnHandler {
 public:
  Session(Server& server, const Listener& listener);
  ~Session() override;

  // Takes the connection from the listener and starts the session. False: accept failed.
  bool accept(uv_stream_t* listener_stream);
  // SIGTERM: a session still in the pre-dialogue gets 421 and closes; a spliced one goes on.
  void shutdown_if_unspliced();
  // The drain timeout ran out.
  void abort();

  void on_read(Conn& conn, std::string_view bytes) override;
  void on_eof(Conn& conn) override;
  void on_error(Conn& conn, int status) override;
  void on_drained(Conn& conn) override;
  void on_connect(Conn& conn, int status) override;

 private:
  enum class State { kProxyHeader, kGreet, kHandoff, kSplice, kDone };
  enum class HandoffStep { kConnecting, kBanner, kEhlo, kXclient };

  const Config& config() const { return *runtime_->config; }
  void connect_decision();
  void start_greet();
  void greet_done();
  void start_handoff();
  void backend_reply(std::string_view bytes);
  void backend_step_done(std::string raw_reply);
  void start_splice(std::string_view banner_for_client);
  void backend_failed(const std::string& reason);
  void client_bytes_while_waiting(std::string_view bytes);
  void reply_and_close(const std::string& reply, const std::string& outcome);
  void finish(const std::string& outcome);
  void arm_timer(std::chrono::milliseconds after);
  static void on_timer(uv_timer_t* timer);
  void timer_fired();
  double seconds_since(std::chrono::steady_clock::time_point t) const;
  std::string who() const { return client_.log_string(); }

  Server& server_;
  const Listener& listener_;
  std::shared_ptr<const Runtime> runtime_;
  Conn client_conn_;
  std::unique_ptr<Conn> backend_conn_;
  UvHandle<uv_timer_t> timer_;
  State state_ = State::kProxyHeader;
  HandoffStep step_ = HandoffStep::kConnecting;

  protocol::Endpoint client_;
  protocol::Endpoint local_;
  std::chrono::steady_clock::time_point started_;
  std::optional<checks::PregreetTest> pregreet_;
  // Client bytes held before the splice (PROXY header, ignored pregreet); bounded by
  // server.buffer_size, past which reading the client pauses.
  std::string held_;
  protocol::ReplyReader backend_reader_;
  bool client_gets_backend_banner_ = false;  // allowlisted: no banner of ours was sent
  bool client_eof_ = false;
  bool backend_eof_ = false;
  uint64_t last_activity_ = 0;  // uv_now() of the last spliced byte
  uint64_t bytes_in_ = 0;       // client -> backend
  uint64_t bytes_out_ = 0;      // backend -> client
};

}  // namespace mxscreen::proxy
