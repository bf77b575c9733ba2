// proxy/store.h: the state store (greylist triplets, verdict cache, counters): get / put with
// TTL / increment / put_if / remove behind one interface, with three engines (lmdb, redis,
// memory). Callbacks always run on the loop thread; memory and lmdb answer at once, redis later.
// Several workers and several hosts share one store, so a read-then-write in the caller is a
// race: counters use increment() and every "the first one decides" uses put_if(), both atomic in
// the engine (Redis: one command or one Lua script; LMDB: one write transaction; memory: one call
// under the workers' lock).
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config.h"

namespace mxscreen::proxy {

enum class StoreStatus : uint8_t {
  kOk,
  kNotFound,
  kUnavailable,  // engine down, full or slow: callers fail open (no greylisting, no cache)
  kConflict,     // put_if: the key held another value, nothing was written
};

std::string_view to_string(StoreStatus status);

// Epoch seconds. Injected so that tests can fake time; TTLs are absolute epoch seconds on disk
// (lmdb), so the clock must be the wall clock in production, not a monotonic one.
using StoreClock = std::function<int64_t()>;
int64_t wall_clock_seconds();

// Named bounds of the engines. map_size and memory_max_bytes come from [store]; the rest are
// fixed defaults (no config key yet).
struct StoreLimits {
  std::size_t max_entries = 1'000'000;                 // memory: entries held
  std::size_t memory_max_bytes = 256u << 20;           // store.memory_max_bytes: memory engine
  std::size_t map_size = 256u << 20;                   // store.map_size: lmdb map size in bytes
  std::chrono::seconds sweep_interval{60};             // lmdb: expired-entry sweep every ...
  std::size_t sweep_batch = 1000;                      // ... this many keys per loop turn
  std::chrono::milliseconds redis_timeout{1000};       // connect and command timeout
  std::size_t redis_max_pending = 10'000;              // commands in flight
  std::chrono::milliseconds redis_backoff_min{1000};   // reconnect back-off, doubling ...
  std::chrono::milliseconds redis_backoff_max{30000};  // ... up to this
  // Keys one scan_page looks at, at most (lmdb, redis): a page of a sparse walk may come back
  // short, even empty, with more to come.
  std::size_t scan_page_examined = 10'000;
};

class Store {
 public:
  using GetCallback = std::function<void(StoreStatus, std::string value)>;
  using StatusCallback = std::function<void(StoreStatus)>;
  using IncrementCallback = std::function<void(StoreStatus, int64_t value)>;
  struct Item {
    std::string key;
    std::string value;
  };
  using ScanCallback = std::function<void(StoreStatus, std::vector<Item> items)>;
  // One page of a prefix walk and where the next one starts ("" = the walk is done).
  struct ScanPage {
    std::vector<Item> items;
    std::string next;
  };
  using PageCallback = std::function<void(StoreStatus, ScanPage page)>;
  // Which items a page keeps. Called with the engine's lock held (memory shared by workers):
  // it must not call the store.
  using ScanFilter = std::function<bool(std::string_view key, std::string_view value)>;

  virtual ~Store();

  // kOk + value, kNotFound (missing or expired) or kUnavailable.
  virtual void get(const std::string& key, GetCallback cb) = 0;
  // Sets `key` to `value` for `ttl` (0 s = no expiry).
  virtual void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
                   StatusCallback cb = {}) = 0;
  // Adds `by` to the decimal integer at `key` (a missing key counts as 0) and answers the new
  // value. `ttl` is set only when the key is created; later increments keep its expiry. A
  // value that is not an integer answers kUnavailable and is left alone.
  virtual void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                         IncrementCallback cb = {}) = 0;
  // Compare-and-set: writes `value` for `ttl` (0 s = no expiry) only when the live value at
  // `key` is `expected`, or, with nullopt, only when the key is missing or expired (Redis
  // SET NX). kOk when written, kConflict when the key held something else, or kUnavailable.
  // Whoever gets kOk won the race; the others read again or stand down.
  virtual void put_if(const std::string& key, const std::optional<std::string>& expected,
                      const std::string& value, std::chrono::seconds ttl,
                      StatusCallback cb = {}) = 0;
  // kOk whether or not the key existed.
  virtual void remove(const std::string& key, StatusCallback cb = {}) = 0;
  // One page of the live keys that start with `prefix`, for the admin socket and the greylist
  // sweep (never the hot path). `cursor` is "" for the first page, then the previous page's
  // `next`; the page holds at most `max` items that `keep` accepts (all, when empty) and looks
  // at no more than StoreLimits::scan_page_examined keys. A key present for the whole walk is met
  // once (redis: at least once, SCAN may repeat one while Redis rehashes); one written or removed
  // meanwhile may or may not be. Redis walks with SCAN MATCH COUNT (never KEYS) and cannot stop
  // inside one SCAN step, so its page may run past `max` by the few keys of that step. lmdb and
  // memory walk in key order and their cursor is the last key looked at. kOk, kUnavailable, or
  // kNotFound for a cursor this engine cannot have made.
  virtual void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                         const ScanFilter& keep, PageCallback cb) = 0;
  // Live keys that start with `prefix` and their values, at most `max` of them, page after
  // page: kOk (maybe with none) or kUnavailable.
  void scan(const std::string& prefix, std::size_t max, ScanCallback cb);
  // "memory", "lmdb", "redis": the engine label on metrics and log lines.
  virtual std::string_view engine() const = 0;
  // A store that writes nothing (`ctl explain`'s dry run, explain.h): what a write would
  // count (a metric observed on a successful put_if) is not counted either.
  virtual bool dry_run() const { return false; }
};

// The engine chosen by store.backend. nullptr + *error when it cannot start (the lmdb file
// cannot be created or opened, a malformed redis_url). A redis server that is down is not an
// error: the engine fails open and connects when it can.
std::unique_ptr<Store> make_store(uv_loop_t* loop, const StoreConfig& store,
                                  const ServerConfig& server, std::string* error,
                                  const StoreLimits& limits = {},
                                  StoreClock clock = wall_clock_seconds);

// A handle on one engine that several workers share, every operation under `mutex`. For the
// memory engine (it answers before the call returns) when server.workers > 1, so that a client
// greylisted by one worker is known to the others.
std::unique_ptr<Store> shared_store(std::shared_ptr<Store> engine,
                                    std::shared_ptr<std::mutex> mutex);

// The store with every operation's latency recorded in mxscreen_store_operation_seconds
// {engine,op} (the server wraps the engine it opens).
std::unique_ptr<Store> with_latency_metrics(std::unique_ptr<Store> store);

// Metrics shared by the engines: mxscreen_store_operations_total{engine,op} and
// mxscreen_store_errors_total{engine,reason}.
void count_store_operation(std::string_view engine, std::string_view op);
void count_store_error(std::string_view engine, std::string_view reason);

}  // namespace mxscreen::proxy
