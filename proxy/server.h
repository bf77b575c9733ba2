// proxy/server.h: one worker's event loop and what hangs off it: the listeners, the live
// sessions, the runtime policy (config + access list, swapped whole on SIGHUP), DNS, the state
// store. server.workers of them run, each on its own thread with its own SO_REUSEPORT listening
// sockets; what must be counted across them (sessions, backend slots, per-client limits, stress
// mode) lives in one WorkerGroup. The first worker alone owns the signals, the metrics
// endpoint, the policy service, the admin socket and the TLS ticket-key timer, and tells the
// others of a reload or a drain through their inboxes.
#pragma once

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <vector>

#include "checks/dialogue.h"
#include "checks/limits.h"
#include "proxy/abuse.h"
#include "proxy/backend_probe.h"
#include "proxy/backend_slots.h"
#include "proxy/client_dns.h"
#include "proxy/config.h"
#include "proxy/control.h"
#include "proxy/deadline_list.h"
#include "proxy/dns.h"
#include "proxy/greylist_sweep.h"
#include "proxy/metrics.h"
#include "proxy/policy_server.h"
#include "proxy/runtime.h"
#include "proxy/store.h"
#include "proxy/tls.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Session;
class Handoff;

struct Listener {
  ListenConfig config;
  std::string label;  // "127.0.0.1:25" for logs and metrics
  UvHandle<uv_tcp_t> tcp;
  class Server* server = nullptr;
};

// What the workers share. Counts are atomics read on every connect; the limits table and the
// stress transition take a lock.
struct WorkerGroup {
  explicit WorkerGroup(std::size_t count) : workers(count, nullptr) {}

  std::vector<class Server*> workers;  // [0] is the first worker
  std::atomic<std::size_t> sessions{0};
  BackendSlots backend_slots;  // backend.max_sessions and the queue behind them
  // Sessions the open-files limit can hold (set once at start): past it a client gets 421
  // like past server.max_sessions, rather than being closed unheard by libuv's EMFILE guard.
  std::atomic<std::size_t> open_files_sessions{SIZE_MAX};
  // Sessions on the splice(2) path, each holding kKernelSpliceFiles more descriptors.
  std::atomic<std::size_t> kernel_spliced{0};
  std::atomic<bool> stressed{false};
  std::mutex gauge_mutex;  // one stress transition at a time; gauges set from fresh counts
  std::mutex limits_mutex;
  checks::ClientLimits client_limits{0, 0};  // under limits_mutex
  // store.backend = "memory" with several workers: one engine, shared (store.h shared_store).
  std::shared_ptr<Store> memory_engine;
  std::shared_ptr<std::mutex> memory_mutex = std::make_shared<std::mutex>();
};

class Server {
 public:
  // Worker `index` of `group` (group.workers[index] is set to this).
  Server(uv_loop_t* loop, std::shared_ptr<const Runtime> runtime, std::string config_path,
         WorkerGroup& group, std::size_t index);
  ~Server();

  // Binds every listener (SO_REUSEPORT when there are several workers) and, on the first
  // worker, the metrics endpoint. Returns false (after logging) on failure. Called on the main
  // thread, as root, before any loop runs.
  bool bind();
  // Opens the state store (after the privilege drop, so its files belong to server.user),
  // starts accepting and, on the first worker, installs the signal handlers and the admin
  // socket. False (after logging) on failure. Called on the main thread before the loops run.
  bool start();

  uv_loop_t* loop() const { return loop_; }
  bool first_worker() const { return index_ == 0; }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  // Across all workers.
  std::size_t active_sessions() const { return group_.sessions.load(std::memory_order_relaxed); }
  // server.max_sessions, or fewer when the open-files limit cannot hold that many (main.cc).
  std::size_t session_limit() const {
    return std::min(static_cast<std::size_t>(runtime_->config->server.max_sessions),
                    group_.open_files_sessions.load(std::memory_order_relaxed));
  }
  // Postfix's stress mode: sessions above server.stress_threshold of server.max_sessions.
  bool under_stress() const { return group_.stressed.load(std::memory_order_relaxed); }
  // Sessions holding a backend connection (handing off or spliced): backend.max_sessions.
  std::size_t backend_sessions() const { return group_.backend_slots.used(); }
  // Sessions waiting for a backend slot (backend.queue_max), across all workers.
  std::size_t backend_queued() const { return group_.backend_slots.queued(); }
  // The splice(2) path takes two pipes and two dup()s (kernel_splice.h): only descriptors the
  // open-files limit has to spare beyond every session's, never one a new client would need.
  // True: taken, give them back with give_back_kernel_splice_files().
  static constexpr std::size_t kKernelSpliceFiles = 6;
  bool take_kernel_splice_files() {
    std::size_t limit = group_.open_files_sessions.load(std::memory_order_relaxed);
    std::size_t spliced = group_.kernel_spliced.fetch_add(1, std::memory_order_relaxed) + 1;
    if (limit == SIZE_MAX || active_sessions() + spliced * kKernelSpliceFiles <= limit) {
      return true;
    }
    group_.kernel_spliced.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void give_back_kernel_splice_files() {
    group_.kernel_spliced.fetch_sub(1, std::memory_order_relaxed);
  }
  bool draining() const { return draining_; }

  // Called by a session when it is done; it is freed on the next loop turn.
  void session_ended(Session* session);
  // A backend slot for a session's `handoff` (see backend_slots.h): kGranted (it is the
  // handoff's until backend_slot_released()), kQueued (`*ticket` set; handoff->slot_granted()
  // is called on this loop when its turn comes) or kFull. `alive` is the session's token.
  BackendSlots::Result backend_slot(Handoff* handoff, const std::shared_ptr<bool>& alive,
                                    uint64_t* ticket);
  // A session gives its slot back: the oldest waiter, on whichever worker, gets it.
  void backend_slot_released();
  // A queued session leaves (gone, timed out). False: a slot is on its way to it already.
  bool backend_queue_leave(uint64_t ticket);
  // Every slot taken and the queue full: a new client would be refused anyway.
  bool backend_full() const;

  // The per-client limits (shared by the workers). client_connect() == kOk must be followed
  // by client_disconnect().
  checks::ClientLimits::Result client_connect(const protocol::IpAddress& client);
  void client_disconnect(const protocol::IpAddress& client);
  // What client_connect() would answer now, counting nothing; `*concurrent` = its sessions.
  checks::ClientLimits::Result client_limits_now(const protocol::IpAddress& client,
                                                 int* concurrent);

  // SIGHUP (first worker): reloads and hands the new runtime to the other workers.
  void reload();
  // SIGTERM/SIGINT (first worker): drains this worker and tells the others to drain.
  void drain();
  // Runs `task` on this worker's loop thread (from any thread); false (task dropped) once it
  // has drained.
  bool post(std::function<void()> task);

  // One timer for every session in its greet wait or in the backend queue (a held or queued
  // connection carries no uv_timer_t of its own): calls session->wake(deadline) (or
  // handoff->wake(deadline)) at `deadline` (uv_now() ms) unless the session (whose liveness
  // token `alive` is) is gone by then.
  void wake_at(Session* session, const std::shared_ptr<bool>& alive, uint64_t deadline);
  void wake_at(Handoff* handoff, const std::shared_ptr<bool>& alive, uint64_t deadline);
  // One timer for every deadline `delay` from when it is set (a session's command time limit,
  // deadline_list.h).
  DeadlineList& deadlines(std::chrono::milliseconds delay);

  // nullptr when no resolver could be set up (DNS tests are then skipped, logged at start).
  Resolver* resolver() { return resolver_ && resolver_->ok() ? resolver_.get() : nullptr; }
  DnsblZoneHealth& dnsbl_health() { return dnsbl_health_; }
  Store& store() { return *store_; }
  Bans& bans() { return *bans_; }

  // The backend's EHLO reply lines as last probed (greeting line first); empty until known.
  const std::vector<std::string>& backend_ehlo() const { return backend_ehlo_; }
  // The dialogue's policy for a session screened with `runtime`: one object shared by every
  // session of the current runtime, made again after a reload or a new probe of the backend's
  // EHLO (a session of an older runtime gets one of its own).
  std::shared_ptr<const checks::DialoguePolicy> dialogue_policy(
      const std::shared_ptr<const Runtime>& runtime);

 private:
  static void on_connection(uv_stream_t* server, int status);
  void accept_one(Listener& listener);
  // Counted by error (mxscreen_accept_errors_total) and logged once a second at most.
  void accept_failed(const Listener& listener, const char* error, const std::string& why);
  void update_gauges();
  void reap();
  void maybe_finish_drain();
  void probe_backend();
  void arm_wake_timer();
  void wake_timer_fired();
  void rotate_ticket_keys();
  void drain_timed_out();
  // Tells each waiter, on its own worker, that the slot is its now.
  void hand_slots(std::vector<BackendSlots::Waiter> granted);
  void use_runtime(std::shared_ptr<const Runtime> runtime);
  void run_inbox();

  struct Wake {
    uint64_t deadline;
    void* target;                                   // a Session or a Handoff
    void (*fire)(void* target, uint64_t deadline);  // calls its wake()
    std::weak_ptr<bool> alive;
    // The session's liveness token is false once it is destroyed. Not `alive.expired()`:
    // store callbacks still pending (Redis) hold copies of the token after the session died.
    bool session_alive() const {
      auto token = alive.lock();
      return token && *token;
    }
    bool operator>(const Wake& other) const { return deadline > other.deadline; }
  };
  void push_wake(Wake wake);
  const Wake* next_wake() const;  // the soonest of wakes_ and fifo_wakes_, or null
  void pop_wake();                // removes next_wake()

  uv_loop_t* loop_;
  std::shared_ptr<const Runtime> runtime_;
  std::string config_path_;
  WorkerGroup& group_;
  std::size_t index_;
  std::string worker_label_;  // worker="N" on mxscreen_worker_sessions_total
  // Before the sessions: they hold lookups on the resolver until they die.
  std::unique_ptr<Resolver> resolver_;
  DnsblZoneHealth dnsbl_health_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Bans> bans_;                     // after the store it writes to
  std::unique_ptr<GreylistSweep> greylist_sweep_;  // first worker; after the store
  std::unique_ptr<PolicyServer> policy_;  // first worker, policy.listen set; after the store
  std::unique_ptr<ControlServer> control_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // deadlines(): one per delay in use (smtp.command_time_limit and its stress value). Before the
  // sessions, whose entries they must outlive.
  std::vector<std::unique_ptr<DeadlineList>> deadline_lists_;
  // The live sessions; each knows its index (Session::server_index), so that one ending is
  // taken out in O(1) without a hash node per session (a held client's memory).
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> dead_;
  bool draining_ = false;
  uint64_t accepted_ = 0;
  uint64_t accept_warned_ms_ = 0;  // uv_now() of the last "accept failed" line
  MetricsServer metrics_server_;
  UvHandle<uv_check_t> reaper_;
  UvHandle<uv_prepare_t> log_flush_;  // writes the loop turn's log lines before it waits
  Timer drain_timer_;
  UvHandle<uv_signal_t> sighup_, sigterm_, sigint_;
  std::vector<std::string> backend_ehlo_;
  std::shared_ptr<const checks::DialoguePolicy> dialogue_policy_;  // for runtime_; null: to make
  std::unique_ptr<BackendProbe> probe_;
  std::unique_ptr<BackendProbe> dead_probe_;
  Timer probe_timer_;
  Timer ticket_timer_;
  Timer wake_timer_;
  // Soonest deadline on top; a session that ended leaves a stale entry, skipped when due.
  std::priority_queue<Wake, std::vector<Wake>, std::greater<>> wakes_;
  // Deadlines that come in the order they were set (a burst of greet waits or of queue waits,
  // backend.queue_timeout being one value) wait here, first in first out, and only the others
  // go to the heap: a deque grows by blocks, where the heap's vector doubles and copies, so a
  // burst of 2,000 queued clients costs their 40 bytes each and no discarded copies (issue 15).
  std::deque<Wake> fifo_wakes_;
  uint64_t wake_timer_due_ = 0;  // the deadline wake_timer_ is armed for, 0 = not armed
  // Tasks from other threads (post()), run on this loop.
  UvHandle<uv_async_t> inbox_;
  std::mutex inbox_mutex_;
  std::vector<std::function<void()>> inbox_tasks_;  // under inbox_mutex_
  bool inbox_open_ = false;                         // under inbox_mutex_
};

}  // namespace mxscreen::proxy
