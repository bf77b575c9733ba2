// proxy/server.h: the process's one event loop and what hangs off it: the listeners, the live
// sessions, the runtime policy (config + access list, swapped whole on SIGHUP), signals, the
// metrics endpoint and the drain on SIGTERM.
#pragma once

#include <uv.h>

#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "checks/access.h"
#include "checks/greylist_allowlist.h"
#include "checks/limits.h"
#include "proxy/abuse.h"
#include "proxy/backend_probe.h"
#include "proxy/client_dns.h"
#include "proxy/config.h"
#include "proxy/control.h"
#include "proxy/dns.h"
#include "proxy/metrics.h"
#include "proxy/store.h"
#include "proxy/tls.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Session;

// What a session is screened with. Immutable once built; a reload builds a new one and live
// sessions keep the one they started with.
struct Runtime {
  std::shared_ptr<const Config> config;
  checks::AccessList access;
  std::string banner;  // greet.banner with $hostname expanded
  // Where the handoff happens (DESIGN.md step 5): at the first RCPT that passes when a test
  // needs the envelope or watches the command stream, after EHLO when only HELO checks are
  // on, else right after the greet wait.
  bool dialogue_needed = false;
  bool handoff_after_helo = false;
  std::shared_ptr<TlsContext> tls;  // nullptr: no STARTTLS
  // dnsbl.sites parsed; lookups for a client start at connect when any DNS test is on.
  std::shared_ptr<const std::vector<checks::DnsblSite>> dnsbl_sites;
  bool client_dns = false;
  // RHSBL lists (same syntax) and whether any test of the HELO name, the sender domain or the
  // reverse name asks DNS at RCPT (domain_dns.h).
  std::shared_ptr<const std::vector<checks::DnsblSite>> helo_rhsbl, sender_rhsbl, reverse_rhsbl;
  bool domain_tests = false;
  // greylist.client_allowlist_file / recipient_allowlist_file (empty lists when unset).
  std::shared_ptr<const checks::ClientAllowlist> greylist_clients;
  std::shared_ptr<const checks::RecipientAllowlist> greylist_recipients;
};

// Builds the runtime from a loaded config (reads access.file). On failure returns nullptr and
// fills `errors` with "file:line:col: message" lines.
std::shared_ptr<const Runtime> build_runtime(Config config, std::vector<std::string>* errors);

struct Listener {
  ListenConfig config;
  std::string label;  // "127.0.0.1:25" for logs and metrics
  UvHandle<uv_tcp_t> tcp;
  class Server* server = nullptr;
};

class Server {
 public:
  Server(uv_loop_t* loop, std::shared_ptr<const Runtime> runtime, std::string config_path);
  ~Server();

  // Binds every listener and the metrics endpoint. Returns false (after logging) on failure.
  bool bind();
  // Opens the state store (after the privilege drop, so its files belong to server.user),
  // starts accepting and installs the signal handlers. False (after logging) on failure.
  bool start();

  uv_loop_t* loop() const { return loop_; }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  std::size_t active_sessions() const { return sessions_.size(); }
  // Postfix's stress mode: sessions above server.stress_threshold of server.max_sessions.
  bool under_stress() const { return stressed_; }
  // Sessions holding a backend connection (handing off or spliced): backend.max_sessions.
  std::size_t backend_sessions() const { return backend_sessions_; }
  bool draining() const { return draining_; }

  // Called by a session when it is done; it is freed on the next loop turn.
  void session_ended(Session* session);
  void backend_session(bool opened) {
    opened ? ++backend_sessions_ : --backend_sessions_;
    update_gauges();
  }

  void reload();
  void drain();

  // One timer for every session in its greet wait (a held connection carries no uv_timer_t of
  // its own): calls session->greet_wait_over(deadline) at `deadline` (uv_now() ms) unless the
  // session is gone by then.
  void greet_wait(Session* session, const std::shared_ptr<bool>& alive, uint64_t deadline);

  checks::ClientLimits& client_limits() { return client_limits_; }
  // nullptr when no resolver could be set up (DNS tests are then skipped, logged at start).
  Resolver* resolver() { return resolver_ && resolver_->ok() ? resolver_.get() : nullptr; }
  DnsblZoneHealth& dnsbl_health() { return dnsbl_health_; }
  Store& store() { return *store_; }
  Bans& bans() { return *bans_; }

  // The backend's EHLO reply lines as last probed (greeting line first); empty until known.
  const std::vector<std::string>& backend_ehlo() const { return backend_ehlo_; }

 private:
  static void on_connection(uv_stream_t* server, int status);
  void accept_one(Listener& listener);
  void update_gauges();
  void reap();
  void maybe_finish_drain();
  void probe_backend();
  void arm_greet_timer();
  void greet_timer_fired();

  struct GreetWait {
    uint64_t deadline;
    Session* session;
    std::weak_ptr<bool> alive;
    bool operator>(const GreetWait& other) const { return deadline > other.deadline; }
  };

  uv_loop_t* loop_;
  std::shared_ptr<const Runtime> runtime_;
  std::string config_path_;
  // Before the sessions: they hold lookups on the resolver until they die.
  std::unique_ptr<Resolver> resolver_;
  DnsblZoneHealth dnsbl_health_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Bans> bans_;  // after the store it writes to
  std::unique_ptr<ControlServer> control_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> dead_;
  std::size_t backend_sessions_ = 0;
  bool draining_ = false;
  bool stressed_ = false;
  checks::ClientLimits client_limits_{0, 0};
  uint64_t accepted_ = 0;
  MetricsServer metrics_server_;
  UvHandle<uv_check_t> reaper_;
  UvHandle<uv_timer_t> drain_timer_;
  UvHandle<uv_signal_t> sighup_, sigterm_, sigint_;
  std::vector<std::string> backend_ehlo_;
  std::unique_ptr<BackendProbe> probe_;
  std::unique_ptr<BackendProbe> dead_probe_;
  UvHandle<uv_timer_t> probe_timer_;
  UvHandle<uv_timer_t> ticket_timer_;
  UvHandle<uv_timer_t> greet_timer_;
  // Soonest deadline on top; a session that ended leaves a stale entry, skipped when due.
  std::priority_queue<GreetWait, std::vector<GreetWait>, std::greater<>> greet_waits_;
  uint64_t greet_timer_due_ = 0;  // the deadline greet_timer_ is armed for, 0 = not armed
};

}  // namespace mxscreen::proxy
