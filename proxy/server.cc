// proxy/server.cc: see server.h.
#include "proxy/server.h"

#include <unistd.h>

#include <csignal>

#include "proxy/log.h"
#include "proxy/screening.h"
#include "proxy/session.h"
#include "proxy/spf_check.h"

namespace mxscreen::proxy {
namespace {

int bind_tcp(uv_tcp_t* tcp, const protocol::Endpoint& at) {
  auto ss = sockaddr_from_endpoint(at);
  return uv_tcp_bind(tcp, reinterpret_cast<const sockaddr*>(&ss),
                     at.address.is_v4() ? 0 : UV_TCP_IPV6ONLY);
}

// One listening socket per worker on the same address: the kernel spreads new connections
// over them (libuv 1.44 cannot set SO_REUSEPORT itself, so the socket is made here).
int bind_reuseport(uv_tcp_t* tcp, const protocol::Endpoint& at) {
  auto ss = sockaddr_from_endpoint(at);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  int rc = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      (!at.address.is_v4() && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&ss),
             ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)) != 0) {
    rc = -errno;
  } else {
    rc = uv_tcp_open(tcp, fd);
  }
  if (rc != 0) ::close(fd);
  return rc;
}

// SO_REUSEPORT would also let a second mxscreen (same user) join the port and take half the
// connections unnoticed. A plain bind first fails with EADDRINUSE while anyone listens there.
int check_port_free(const protocol::Endpoint& at) {
  auto ss = sockaddr_from_endpoint(at);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  int rc = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (!at.address.is_v4() && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&ss),
             ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)) != 0) {
    rc = -errno;
  }
  ::close(fd);
  return rc;
}

template <typename Fn>
void start_signal(uv_loop_t* loop, UvHandle<uv_signal_t>& handle, int signum, void* data, Fn fn) {
  uv_signal_init(loop, handle.get());
  handle.initialized();
  handle->data = data;
  uv_signal_start(handle.get(), fn, signum);
  uv_unref(handle.base());  // signals alone do not keep the loop running
}

}  // namespace

Server::Server(uv_loop_t* loop, std::shared_ptr<const Runtime> runtime, std::string config_path,
               WorkerGroup& group, std::size_t index)
    : loop_(loop),
      runtime_(std::move(runtime)),
      config_path_(std::move(config_path)),
      group_(group),
      index_(index),
      worker_label_("worker=\"" + std::to_string(index) + "\""),
      metrics_server_(loop) {
  group_.workers.at(index_) = this;
  if (!first_worker()) return;
  auto& m = metrics();
  m.describe("mxscreen_connections_total", "counter", "Connections accepted, by listener.");
  m.describe("mxscreen_sessions_total", "counter", "Sessions ended, by outcome.");
  m.describe("mxscreen_sessions_active", "gauge", "Sessions open now.");
  m.describe("mxscreen_worker_sessions_total", "counter",
             "Connections accepted, by worker (server.workers event loops).");
  m.describe("mxscreen_sessions_backend", "gauge",
             "Sessions holding a backend connection now (handoff or splice).");
  m.describe("mxscreen_handoffs_total", "counter", "Sessions handed to the backend.");
  m.describe("mxscreen_kernel_splice_total", "counter",
             "Spliced sessions whose bytes the kernel moves (splice(2), result=spliced) or that "
             "stayed on the copy path because the kernel refused (result=fallback) or the "
             "open-files limit had no descriptors to spare (result=no_files).");
  m.describe("mxscreen_backend_queue_depth", "gauge",
             "Sessions waiting for a backend slot now (backend.queue_max).");
  m.describe("mxscreen_backend_queue_total", "counter",
             "Backend queue events, by outcome: queued, served (got a slot), left (client gone "
             "while queued), timeout (backend.queue_timeout, 421), full (backend.queue_max, "
             "421).");
  m.describe("mxscreen_backend_queue_wait_seconds", "histogram",
             "Time a served session waited in the backend queue.");
  m.describe("mxscreen_backend_failures_total", "counter",
             "Handoffs that failed, by step (connect, banner, xclient).");
  m.describe("mxscreen_pregreet_total", "counter",
             "Greet test results: pass, ignore (early talker let through), drop, hangup.");
  m.describe("mxscreen_spliced_bytes_total", "counter", "Bytes spliced, by direction.");
  m.describe("mxscreen_splice_refused_total", "counter",
             "Client commands answered by mxscreen after an XCLIENT handoff, never forwarded "
             "(xclient, xforward, starttls, line_too_long).");
  m.describe("mxscreen_cache_expired_total", "counter",
             "Verdict cache passes found expired at connect, by test.");
  m.describe("mxscreen_cache_dnsbl_recheck_total", "counter",
             "Expired DNSBL verdicts looked up again at connect, by outcome (pass, listed).");
  m.describe("mxscreen_reloads_total", "counter", "SIGHUP reloads, by result.");
  m.describe("mxscreen_limit_hits_total", "counter",
             "Connections refused by a limit (max_sessions, backend_max_sessions, "
             "client_connection_count, client_connection_rate).");
  describe_spf_metrics();
  m.describe("mxscreen_test_results_total", "counter",
             "Pre-dialogue test hits, by test and outcome (ignore, enforce, drop, reject).");
  // Families the alert rules and the dashboard (docs/monitoring/) query exist from the start,
  // before their first sample: an alert on a family that never appears would never fire.
  m.describe("mxscreen_greylist_total", "counter",
             "Greylist decisions, by outcome and by the triplet's key (spf, ptr, net; none).");
  m.describe("mxscreen_trap_hits_total", "counter",
             "RCPTs to greylist.trap_recipients, by side (dialogue, policy); each bans.");
  m.describe("mxscreen_greylist_delay_seconds", "histogram",
             "What greylisting cost mail that passed: seconds from a triplet's first try to "
             "the retry that passed.");
  m.describe("mxscreen_bans_total", "counter", "Bans given, by trigger.");
  m.describe("mxscreen_tls_handshakes_total", "counter", "STARTTLS handshakes, by result.");
  m.describe("mxscreen_dnsbl_hits_total", "counter", "DNSBL/DNSWL listings seen, by zone.");
  m.describe("mxscreen_dnsbl_zone_healthy", "gauge",
             "1 while a DNSBL zone answers sanely, 0 after it answered with an error code.");
  m.describe("mxscreen_admin_connections_closed_total", "counter",
             "Connections to /metrics (socket=\"metrics\") or the admin socket "
             "(socket=\"ctl\") closed by their bounds: reason=\"max_connections\" (refused at "
             "once) or \"timeout\".");
  m.describe("mxscreen_connections_unknown_peer_total", "counter",
             "Connections closed at accept because the kernel had no client address for them "
             "(the client reset first).");
  const auto& limits = runtime_->config->limits;
  {
    std::lock_guard lock(group_.limits_mutex);
    group_.client_limits.set_limits(limits.client_connection_count, limits.client_connection_rate);
  }
  update_gauges();
}

Server::~Server() = default;

bool Server::bind() {
  const auto& config = *runtime_->config;
  for (const auto& lc : config.listen) {
    auto listener = std::make_unique<Listener>();
    listener->config = lc;
    listener->label = lc.address.to_string();
    listener->server = this;
    uv_tcp_init(loop_, listener->tcp.get());
    listener->tcp.initialized();
    listener->tcp->data = listener.get();
    int rc = 0;
    if (group_.workers.size() == 1) {
      rc = bind_tcp(listener->tcp.get(), lc.address);
    } else {
      if (first_worker()) rc = check_port_free(lc.address);
      if (rc == 0) rc = bind_reuseport(listener->tcp.get(), lc.address);
    }
    if (rc == 0) rc = uv_listen(listener->tcp.stream(), 4096, on_connection);
    if (rc != 0) {
      Log::error("cannot listen on " + listener->label + ": " + uv_error(rc));
      return false;
    }
    if (first_worker()) {
      Log::info("listening on " + listener->label + " role " +
                (lc.role == ListenRole::kFakeMx ? "fake_mx" : "mx") +
                (lc.proxy_protocol ? " (PROXY protocol expected)" : "") +
                (group_.workers.size() > 1
                     ? ", " + std::to_string(group_.workers.size()) + " workers"
                     : std::string()));
    }
    listeners_.push_back(std::move(listener));
  }
  if (config.metrics.listen && first_worker()) {
    MetricsServer::Limits limits;
    limits.max_connections = static_cast<std::size_t>(config.metrics.max_connections);
    limits.timeout = config.metrics.timeout;
    int rc = metrics_server_.start(*config.metrics.listen, limits);
    if (rc != 0) {
      Log::error("cannot serve metrics on " + config.metrics.listen->to_string() + ": " +
                 uv_error(rc));
      return false;
    }
  }
  if (config.policy.listen && first_worker()) {
    policy_ = std::make_unique<PolicyServer>(loop_, *this);
    int rc = policy_->start(*config.policy.listen);
    if (rc != 0) {
      Log::error("cannot serve the policy service on " + config.policy.listen->to_string() + ": " +
                 uv_error(rc));
      return false;
    }
    Log::info("policy service on " + config.policy.listen->to_string() +
              " (Postfix: check_policy_service inet:" + config.policy.listen->to_string() + ")");
  }
  return true;
}

bool Server::start() {
  const auto& config = *runtime_->config;
  std::string store_error;
  StoreLimits store_limits;
  store_limits.map_size = config.store.map_size;
  store_limits.memory_max_bytes = config.store.memory_max_bytes;
  if (config.store.backend == StoreBackend::kMemory && group_.workers.size() > 1) {
    // One table for every worker: a client's retry may land on another worker.
    if (!group_.memory_engine) {
      group_.memory_engine =
          make_store(loop_, config.store, config.server, &store_error, store_limits);
    }
    if (group_.memory_engine) store_ = shared_store(group_.memory_engine, group_.memory_mutex);
  } else {
    store_ = make_store(loop_, config.store, config.server, &store_error, store_limits);
  }
  store_ = with_latency_metrics(std::move(store_));
  if (!store_) {
    Log::error("cannot open the " + std::string(to_string(config.store.backend)) +
               " state store: " + store_error);
    return false;
  }
  bans_ = std::make_unique<Bans>(loop_, *store_,
                                 [this]() -> const Config& { return *runtime_->config; });
  if (first_worker()) {
    greylist_sweep_ = std::make_unique<GreylistSweep>(
        loop_, *store_, [this]() -> const Config& { return *runtime_->config; });
    greylist_sweep_->start();
    control_ = std::make_unique<ControlServer>(loop_, *this);
    const std::string control_path = control_socket_path(config.server.state_dir);
    if (int rc = control_->start(control_path); rc != 0) {
      // Not fatal: mail flows without it; the admin learns why ctl cannot connect.
      Log::warning("admin socket " + control_path + " unavailable: " + uv_error(rc));
    }
  }
  DnsOptions options;
  using Sec = std::chrono::seconds;
  options.ttl_min = std::chrono::duration_cast<Sec>(config.dns.ttl_min);
  options.ttl_max = std::chrono::duration_cast<Sec>(config.dns.ttl_max);
  options.negative_ttl = std::chrono::duration_cast<Sec>(config.dns.negative_ttl);
  options.cache_size = static_cast<size_t>(config.dns.cache_size);
  options.retries = config.dns.retries;
  options.max_queries = static_cast<size_t>(config.dns.max_queries);
  resolver_ = std::make_unique<Resolver>(loop_, config.dns, options);
  if (!resolver_->ok() && first_worker()) {
    Log::warning("DNS resolver unavailable: " + resolver_->error() +
                 "; DNSBL and reverse DNS tests are skipped");
  }
  uv_check_init(loop_, reaper_.get());
  reaper_.initialized();
  reaper_->data = this;
  uv_prepare_init(loop_, log_flush_.get());
  log_flush_.initialized();
  uv_prepare_start(log_flush_.get(), [](uv_prepare_t*) { Log::flush(); });
  uv_unref(log_flush_.base());
  probe_timer_.init<&Server::probe_backend>(loop_, this, false);
  probe_backend();
  wake_timer_.init<&Server::wake_timer_fired>(loop_, this);
  uv_async_init(loop_, inbox_.get(), [](uv_async_t* h) {
    if (auto* self = static_cast<Server*>(h->data)) self->run_inbox();
  });
  inbox_.initialized();
  inbox_->data = this;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_open_ = true;
  }
  if (!first_worker()) return true;
  ticket_timer_.init<&Server::rotate_ticket_keys>(loop_, this, false);
  ticket_timer_.start(std::chrono::milliseconds(0), std::chrono::minutes(1));
  start_signal(loop_, sighup_, SIGHUP, this,
               [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->reload(); });
  start_signal(loop_, sigterm_, SIGTERM, this,
               [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->drain(); });
  start_signal(loop_, sigint_, SIGINT, this,
               [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->drain(); });
  return true;
}

bool Server::post(std::function<void()> task) {
  std::lock_guard lock(inbox_mutex_);
  if (!inbox_open_) return false;
  inbox_tasks_.push_back(std::move(task));
  uv_async_send(inbox_.get());
  return true;
}

BackendSlots::Result Server::backend_slot(Handoff* handoff, const std::shared_ptr<bool>& alive,
                                          uint64_t* ticket) {
  const auto& backend = runtime_->config->backend;
  BackendSlots::Waiter waiter{index_, handoff, alive, 0};
  auto result = group_.backend_slots.acquire(static_cast<size_t>(backend.max_sessions),
                                             static_cast<size_t>(backend.queue_max), &waiter);
  *ticket = waiter.ticket;
  update_gauges();
  return result;
}

void Server::backend_slot_released() {
  hand_slots(
      group_.backend_slots.release(static_cast<size_t>(runtime_->config->backend.max_sessions)));
  update_gauges();
}

bool Server::backend_queue_leave(uint64_t ticket) {
  bool left = group_.backend_slots.leave(ticket);
  update_gauges();
  return left;
}

bool Server::backend_full() const {
  const auto& backend = runtime_->config->backend;
  return group_.backend_slots.full(static_cast<size_t>(backend.max_sessions),
                                   static_cast<size_t>(backend.queue_max));
}

void Server::hand_slots(std::vector<BackendSlots::Waiter> granted) {
  for (auto& waiter : granted) {
    Server* worker = group_.workers.at(waiter.worker);
    // Always through the inbox, even on this worker: the session that freed the slot may be
    // in the middle of its own callbacks.
    bool posted = worker->post([worker, waiter] {
      auto alive = waiter.alive.lock();
      if (alive && *alive && waiter.handoff->slot_granted(waiter.ticket)) return;
      worker->backend_slot_released();  // it left meanwhile: the next waiter's turn
    });
    // A worker that has drained has no sessions left: pass the slot on from here.
    if (!posted)
      hand_slots(group_.backend_slots.release(
          static_cast<size_t>(runtime_->config->backend.max_sessions)));
  }
}

void Server::run_inbox() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(inbox_mutex_);
    tasks.swap(inbox_tasks_);
  }
  for (auto& task : tasks) task();
}

checks::ClientLimits::Result Server::client_connect(const protocol::IpAddress& client) {
  std::lock_guard lock(group_.limits_mutex);
  return group_.client_limits.on_connect(client, static_cast<int64_t>(uv_now(loop_)));
}

checks::ClientLimits::Result Server::client_limits_now(const protocol::IpAddress& client,
                                                       int* concurrent) {
  std::lock_guard lock(group_.limits_mutex);
  *concurrent = group_.client_limits.concurrent(client);
  return group_.client_limits.would_connect(client, static_cast<int64_t>(uv_now(loop_)));
}

void Server::client_disconnect(const protocol::IpAddress& client) {
  std::lock_guard lock(group_.limits_mutex);
  group_.client_limits.on_disconnect(client);
}

void Server::wake_at(Session* session, const std::shared_ptr<bool>& alive, uint64_t deadline) {
  push_wake(Wake{deadline, session, [](void* s, uint64_t d) { static_cast<Session*>(s)->wake(d); },
                 alive});
}

void Server::wake_at(Handoff* handoff, const std::shared_ptr<bool>& alive, uint64_t deadline) {
  push_wake(Wake{deadline, handoff, [](void* h, uint64_t d) { static_cast<Handoff*>(h)->wake(d); },
                 alive});
}

DeadlineList& Server::deadlines(std::chrono::milliseconds delay) {
  for (const auto& list : deadline_lists_) {
    if (list->delay() == delay) return *list;
  }
  return *deadline_lists_.emplace_back(std::make_unique<DeadlineList>(loop_, delay));
}

void Server::push_wake(Wake wake) {
  if (fifo_wakes_.empty() || wake.deadline >= fifo_wakes_.back().deadline) {
    fifo_wakes_.push_back(std::move(wake));
  } else {
    wakes_.push(std::move(wake));
  }
  arm_wake_timer();
}

const Server::Wake* Server::next_wake() const {
  if (wakes_.empty()) return fifo_wakes_.empty() ? nullptr : &fifo_wakes_.front();
  if (fifo_wakes_.empty() || wakes_.top().deadline <= fifo_wakes_.front().deadline) {
    return &wakes_.top();
  }
  return &fifo_wakes_.front();
}

void Server::pop_wake() {
  if (!wakes_.empty() &&
      (fifo_wakes_.empty() || wakes_.top().deadline <= fifo_wakes_.front().deadline)) {
    wakes_.pop();
  } else {
    fifo_wakes_.pop_front();
  }
}

void Server::arm_wake_timer() {
  // Stale entries on top (sessions that ended) are dropped here, so that an idle server's
  // loop is not kept alive by a timer that has nobody to wake.
  while (!wakes_.empty() && !wakes_.top().session_alive()) wakes_.pop();
  while (!fifo_wakes_.empty() && !fifo_wakes_.front().session_alive()) fifo_wakes_.pop_front();
  const Wake* next = next_wake();
  if (!next) {
    wake_timer_.stop();
    wake_timer_due_ = 0;
    return;
  }
  uint64_t due = next->deadline;
  if (wake_timer_due_ == due) return;
  uint64_t now = uv_now(loop_);
  wake_timer_.start(std::chrono::milliseconds(due > now ? due - now : 0));
  wake_timer_due_ = due;
}

void Server::wake_timer_fired() {
  wake_timer_due_ = 0;
  uint64_t now = uv_now(loop_);
  for (const Wake* next = next_wake(); next && next->deadline <= now; next = next_wake()) {
    Wake due = *next;
    pop_wake();
    if (due.session_alive()) due.fire(due.target, due.deadline);
  }
  arm_wake_timer();
}

void Server::on_connection(uv_stream_t* server, int status) {
  auto* listener = static_cast<Listener*>(server->data);
  if (!listener) return;
  if (status < 0) {
    // EMFILE/ENFILE: libuv has already closed the waiting connections through its reserve
    // descriptor (so the loop does not spin on a readable listener); the sessions we have go on.
    listener->server->accept_failed(*listener, uv_err_name(status), uv_error(status));
    return;
  }
  listener->server->accept_one(*listener);
}

void Server::accept_failed(const Listener& listener, const char* error, const std::string& why) {
  metrics().inc("mxscreen_accept_errors_total", "error=\"" + std::string(error) + "\"");
  // One line a second at most: a flood past the descriptor limit must not flood the log.
  uint64_t now = uv_now(loop_);
  if (accept_warned_ms_ != 0 && now - accept_warned_ms_ < 1000) return;
  accept_warned_ms_ = now;
  Log::warning("accept on " + listener.label + " failed: " + why + " (" +
               std::to_string(sessions_.size()) +
               " sessions open); new connections are closed until descriptors free up");
}

void Server::accept_one(Listener& listener) {
  // Forget clients that went quiet, now and then (the table is bounded by live clients plus
  // those seen in the last minute).
  if (++accepted_ % 1024 == 0) {
    std::lock_guard lock(group_.limits_mutex);
    group_.client_limits.sweep(static_cast<int64_t>(uv_now(loop_)));
  }
  auto session = std::make_unique<Session>(*this, listener);
  Session* raw = session.get();
  // Listed (and counted) before accept(): the connect decision may end the session at once.
  raw->set_server_index(static_cast<uint32_t>(sessions_.size()));
  sessions_.push_back(std::move(session));
  group_.sessions.fetch_add(1, std::memory_order_relaxed);
  metrics().inc("mxscreen_worker_sessions_total", worker_label_);
  if (!raw->accept(listener.tcp.stream())) {
    accept_failed(listener, "session", "the connection could not be taken over");
    session_ended(raw);
    return;
  }
  update_gauges();
}

void Server::session_ended(Session* session) {
  uint32_t index = session->server_index();
  if (index >= sessions_.size() || sessions_[index].get() != session) return;  // ended before
  dead_.push_back(std::move(sessions_[index]));
  if (index + 1 != sessions_.size()) {
    sessions_[index] = std::move(sessions_.back());
    sessions_[index]->set_server_index(index);
  }
  sessions_.pop_back();
  session->set_server_index(UINT32_MAX);
  group_.sessions.fetch_sub(1, std::memory_order_relaxed);
  update_gauges();
  // Free it after the callback that ended it has unwound.
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<Server*>(h->data)) self->reap();
  });
}

void Server::reap() {
  dead_.clear();
  dead_probe_.reset();
  uv_check_stop(reaper_.get());
  maybe_finish_drain();
}

void Server::update_gauges() {
  const auto& server = runtime_->config->server;
  // Under the lock, so that the last gauge written holds the counts as they are now.
  std::lock_guard lock(group_.gauge_mutex);
  std::size_t sessions = group_.sessions.load();
  const auto limit = static_cast<double>(session_limit());
  bool stressed = static_cast<double>(sessions) > server.stress_threshold * limit;
  if (stressed != group_.stressed.load()) {
    group_.stressed = stressed;
    // postscreen's words: limits tighten (hard limit 1, no error sleep) while it lasts.
    Log::event(stressed ? LogLevel::kWarning : LogLevel::kInfo, "STRESS",
               std::string(stressed ? "entering" : "leaving") +
                   " stress mode: " + std::to_string(sessions) + " sessions, threshold " +
                   std::to_string(static_cast<int64_t>(server.stress_threshold * limit)));
    metrics().inc("mxscreen_stress_transitions_total",
                  std::string("to=\"") + (stressed ? "on" : "off") + "\"");
  }
  metrics().set("mxscreen_stress_mode", "", stressed ? 1 : 0);
  metrics().set("mxscreen_sessions_active", "", static_cast<int64_t>(sessions));
  metrics().set("mxscreen_sessions_backend", "", static_cast<int64_t>(group_.backend_slots.used()));
  metrics().set("mxscreen_backend_queue_depth", "",
                static_cast<int64_t>(group_.backend_slots.queued()));
}

void Server::reload() {
  std::vector<std::string> errors;
  auto rt = load_runtime(config_path_, &errors);
  if (!rt) {
    for (const auto& e : errors) Log::error("reload: " + e);
    Log::error("reload of " + config_path_ + " refused; keeping the running configuration");
    metrics().inc("mxscreen_reloads_total", "result=\"refused\"");
    return;
  }
  // Listeners are bound once (we may no longer be root): changes to them need a restart.
  const auto& old_listen = runtime_->config->listen;
  const auto& new_listen = rt->config->listen;
  bool same = old_listen.size() == new_listen.size();
  for (size_t i = 0; same && i < old_listen.size(); ++i) {
    same = old_listen[i].address == new_listen[i].address;
  }
  if (!same) Log::warning("reload: [[listen]] changes take effect after a restart");
  if (rt->config->policy.listen != runtime_->config->policy.listen) {
    Log::warning("reload: policy.listen changes take effect after a restart");
  }
  if (rt->config->server.workers != runtime_->config->server.workers) {
    Log::warning("reload: server.workers changes take effect after a restart");
  }
  // The resolver is shared by live sessions: [dns] changes need a restart as well.
  // Tickets issued under the old certificates stay valid across the reload.
  if (rt->tls && runtime_->tls) rt->tls->adopt_ticket_keys(*runtime_->tls);
  {
    const auto& limits = rt->config->limits;
    std::lock_guard lock(group_.limits_mutex);
    group_.client_limits.set_limits(limits.client_connection_count, limits.client_connection_rate);
  }
  for (Server* worker : group_.workers) {
    if (worker != this) worker->post([worker, rt] { worker->use_runtime(rt); });
  }
  use_runtime(std::move(rt));
  Log::info("reloaded " + config_path_ + "; new sessions use the new configuration");
  metrics().inc("mxscreen_reloads_total", "result=\"ok\"");
}

std::shared_ptr<const checks::DialoguePolicy> Server::dialogue_policy(
    const std::shared_ptr<const Runtime>& runtime) {
  if (runtime != runtime_) return make_dialogue_policy(*runtime, backend_ehlo_);
  if (!dialogue_policy_) dialogue_policy_ = make_dialogue_policy(*runtime_, backend_ehlo_);
  return dialogue_policy_;
}

void Server::use_runtime(std::shared_ptr<const Runtime> runtime) {
  runtime_ = std::move(runtime);
  dialogue_policy_.reset();
  probe_backend();
}

void Server::drain() {
  if (draining_) return;
  draining_ = true;
  if (first_worker()) {
    Log::info("stopping: no new connections; waiting up to " +
              std::to_string(runtime_->config->server.drain_timeout.count() / 1000) + "s for " +
              std::to_string(backend_sessions()) + " sessions at the backend");
    for (Server* worker : group_.workers) {
      if (worker != this) worker->post([worker] { worker->drain(); });
    }
  }
  for (auto& l : listeners_) l->tcp.close();
  metrics_server_.stop();
  control_.reset();
  greylist_sweep_.reset();
  probe_.reset();
  probe_timer_.close();
  ticket_timer_.close();
  std::vector<Session*> live;
  for (auto& s : sessions_) live.push_back(s.get());
  for (Session* s : live) s->shutdown_if_unspliced();
  drain_timer_.init<&Server::drain_timed_out>(loop_, this, false);
  drain_timer_.start(runtime_->config->server.drain_timeout);
  maybe_finish_drain();
}

void Server::drain_timed_out() {
  Log::warning("drain timeout: closing " + std::to_string(sessions_.size()) + " sessions");
  std::vector<Session*> left;
  for (auto& s : sessions_) left.push_back(s.get());
  for (Session* s : left) s->abort();
}

void Server::rotate_ticket_keys() {
  if (runtime_->tls) runtime_->tls->rotate_ticket_keys(std::chrono::steady_clock::now());
}

void Server::maybe_finish_drain() {
  if (!draining_ || !sessions_.empty() || !dead_.empty()) return;
  drain_timer_.close();
  wake_timer_.close();
  policy_.reset();  // served the backend's spliced sessions until the last one ended
  resolver_.reset();
  greylist_sweep_.reset();
  bans_.reset();
  store_.reset();
  sighup_.close();
  sigterm_.close();
  sigint_.close();
  reaper_.close();
  log_flush_.close();
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_open_ = false;
  }
  inbox_.close();
  // Nothing keeps the loop alive now: uv_run returns once pending closes are done.
}

}  // namespace mxscreen::proxy

namespace mxscreen::proxy {

void Server::probe_backend() {
  if (draining_ || probe_) return;
  const auto& config = *runtime_->config;
  // Retry while the backend is unreachable, so the EHLO mirror catches up by itself.
  static constexpr uint64_t kRetryMs = 30000;
  probe_ = std::make_unique<BackendProbe>(
      loop_, config.backend, config.server.hostname,
      [this](std::optional<std::vector<std::string>> lines, const std::string& why) {
        // Destroy the probe after its callback has unwound.
        dead_probe_ = std::move(probe_);
        uv_check_start(reaper_.get(), [](uv_check_t* h) {
          if (auto* self = static_cast<Server*>(h->data)) self->reap();
        });
        if (lines) {
          backend_ehlo_ = std::move(*lines);
          dialogue_policy_.reset();
          if (!first_worker()) return;  // every worker probes; one says so
          Log::info("backend " + runtime_->config->backend.address.to_string() + " offers " +
                    std::to_string(backend_ehlo_.size() > 0 ? backend_ehlo_.size() - 1 : 0) +
                    " EHLO keywords; mirrored to clients");
          auto warning = backend_starttls_warning(*runtime_->config, backend_ehlo_);
          if (!warning.empty()) Log::warning(warning);
          return;
        }
        if (first_worker()) {
          Log::warning("backend " + runtime_->config->backend.address.to_string() +
                       " EHLO probe failed: " + why + "; offering default EHLO keywords, " +
                       "retry in " + std::to_string(kRetryMs / 1000) + "s");
          metrics().inc("mxscreen_backend_failures_total", "step=\"probe\"");
        }
        probe_timer_.start(std::chrono::milliseconds(kRetryMs));
      });
  probe_->start();
}

}  // namespace mxscreen::proxy
