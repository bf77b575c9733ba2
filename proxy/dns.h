// proxy/dns.h: the asynchronous stub resolver of one worker: udns on the libuv loop (a poll
// handle on the udns socket, a timer for udns's retries, a deadline timer per query for
// dns.timeout), with the DnsCache in front and identical lookups in flight sharing one query.
// Answers always arrive from the loop, never inside lookup(); dropping the DnsLookup token
// drops interest, so a session that dies is never called back.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/address.h"
#include "proxy/config.h"
#include "proxy/dns_cache.h"
#include "proxy/uv_handle.h"

struct dns_ctx;    // udns
struct dns_query;  // udns

namespace mxscreen::proxy {

// The resolver's tuning, filled from the [dns] section by the server.
struct DnsOptions {
  std::chrono::seconds ttl_min{60};       // dns.ttl_min
  std::chrono::seconds ttl_max{3600};     // dns.ttl_max
  std::chrono::seconds negative_ttl{60};  // dns.negative_ttl
  std::size_t cache_size = 50000;         // dns.cache_size (entries; 0 = no cache)
  int retries = 2;                        // dns.retries (resends after the first try)
  std::size_t max_queries = 10000;        // dns.max_queries in flight; beyond: tempfail
};

using DnsCallback = std::function<void(const DnsAnswer&)>;

// Interest in one answer. Move-only; destroying it (or cancel()) means the callback will not
// run. The query itself goes on for the cache and for other askers.
class [[nodiscard]] DnsLookup {
 public:
  DnsLookup() = default;
  DnsLookup(DnsLookup&&) noexcept = default;
  DnsLookup& operator=(DnsLookup&&) noexcept = default;
  DnsLookup(const DnsLookup&) = delete;
  DnsLookup& operator=(const DnsLookup&) = delete;

  void cancel() { waiter_.reset(); }
  bool pending() const { return waiter_ && !waiter_->done; }

  struct Waiter {
    DnsCallback callback;
    bool done = false;
  };

 private:
  friend class Resolver;
  explicit DnsLookup(std::shared_ptr<Waiter> waiter) : waiter_(std::move(waiter)) {}
  std::shared_ptr<Waiter> waiter_;
};

// What the resolver makes of a raw DNS reply to a `type` query (header, one question, the
// answer records): udns's checks and parser, then the same values a live answer gives. For the
// fuzzer (tests/fuzz/dns_answer_fuzz.cc); a reply udns would not take is kTempFail.
DnsAnswer parse_dns_reply(DnsType type, std::string_view packet);

class Resolver {
 public:
  using Callback = DnsCallback;

  Resolver(uv_loop_t* loop, const DnsConfig& config, const DnsOptions& options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // False when udns could not be set up; every lookup then answers kTempFail.
  bool ok() const { return ctx_ != nullptr; }
  std::string error() const { return error_; }

  DnsLookup lookup(DnsType type, const std::string& name, Callback callback);
  // PTR of d.c.b.a.in-addr.arpa / the nibbles under ip6.arpa.
  DnsLookup lookup_ptr(const protocol::IpAddress& address, Callback callback);

  DnsCache& cache() { return cache_; }
  std::size_t in_flight() const { return queries_.size(); }

  // "d.c.b.a.in-addr.arpa" / "...ip6.arpa" for `address`.
  static std::string ptr_name(const protocol::IpAddress& address);

 private:
  struct Query;
  struct Delivery {
    std::weak_ptr<DnsLookup::Waiter> waiter;
    std::shared_ptr<const DnsAnswer> answer;
  };

  DnsCache::Clock::time_point now() const;
  void deliver_later(std::weak_ptr<DnsLookup::Waiter> waiter,
                     std::shared_ptr<const DnsAnswer> answer);
  void deliver_now();
  void complete(Query* query, DnsAnswer answer);

  static void on_udns_answer(dns_ctx* ctx, void* result, void* data);
  static void on_udns_timer_request(dns_ctx* ctx, int timeout, void* data);
  void on_udns_timer();
  static void on_readable(uv_poll_t* poll, int status, int events);

  uv_loop_t* loop_;
  DnsOptions options_;
  std::chrono::milliseconds timeout_;
  DnsCache cache_;
  dns_ctx* ctx_ = nullptr;
  std::string error_;
  UvHandle<uv_poll_t> poll_;
  Timer udns_timer_;
  Timer deliver_timer_;
  std::unordered_map<std::string, std::unique_ptr<Query>> queries_;  // by cache key
  std::vector<Delivery> deliveries_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxscreen::proxy
