// proxy/store.cc: engine selection (store.backend) and the metrics the engines share.
#include "proxy/store.h"

#include <filesystem>
#include <mutex>

#include "proxy/metrics.h"
#include "proxy/store_lmdb.h"
#include "proxy/store_memory.h"
#include "proxy/store_redis.h"

namespace mxscreen::proxy {

Store::~Store() = default;

namespace {

// Store::scan's walk: pages until `max` items or the end.
struct ScanWalk {
  Store* store;
  std::string prefix;
  std::size_t max;
  Store::ScanCallback cb;
  std::vector<Store::Item> items;

  void next(const std::string& cursor, const std::shared_ptr<ScanWalk>& self) {
    store->scan_page(prefix, cursor, max - items.size(), {},
                     [self](StoreStatus status, Store::ScanPage page) {
                       if (status != StoreStatus::kOk) return self->cb(status, {});
                       for (auto& item : page.items) {
                         if (self->items.size() < self->max) self->items.push_back(std::move(item));
                       }
                       if (page.next.empty() || self->items.size() >= self->max) {
                         return self->cb(StoreStatus::kOk, std::move(self->items));
                       }
                       self->next(page.next, self);
                     });
  }
};

}  // namespace

void Store::scan(const std::string& prefix, std::size_t max, ScanCallback cb) {
  if (max == 0) return cb(StoreStatus::kOk, {});
  auto walk = std::make_shared<ScanWalk>(ScanWalk{this, prefix, max, std::move(cb), {}});
  walk->next("", walk);
}

std::string_view to_string(StoreStatus status) {
  switch (status) {
    case StoreStatus::kOk:
      return "ok";
    case StoreStatus::kNotFound:
      return "not found";
    case StoreStatus::kUnavailable:
      return "unavailable";
    case StoreStatus::kConflict:
      return "conflict";
  }
  return "unavailable";
}

int64_t wall_clock_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

void describe_store_metrics() {
  metrics().describe("mxscreen_store_operations_total", "counter",
                     "State store operations by engine and operation.");
  metrics().describe("mxscreen_store_errors_total", "counter",
                     "State store failures by engine and reason (the proxy failed open).");
  metrics().describe("mxscreen_store_operation_seconds", "histogram",
                     "State store latency, from the call to its answer, by engine and operation.");
}

// Times every operation from the call to its callback (Redis: the round trip) into
// mxscreen_store_operation_seconds{engine,op}. Everything else is the engine's.
class TimedStore : public Store {
 public:
  explicit TimedStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

  void get(const std::string& key, GetCallback cb) override {
    inner_->get(key, [t = timer("get"), cb = std::move(cb)](StoreStatus s, std::string v) {
      t();
      if (cb) cb(s, std::move(v));
    });
  }
  void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
           StatusCallback cb) override {
    inner_->put(key, value, ttl, [t = timer("put"), cb = std::move(cb)](StoreStatus s) {
      t();
      if (cb) cb(s);
    });
  }
  void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                 IncrementCallback cb) override {
    inner_->increment(key, by, ttl,
                      [t = timer("increment"), cb = std::move(cb)](StoreStatus s, int64_t v) {
                        t();
                        if (cb) cb(s, v);
                      });
  }
  void put_if(const std::string& key, const std::optional<std::string>& expected,
              const std::string& value, std::chrono::seconds ttl, StatusCallback cb) override {
    inner_->put_if(key, expected, value, ttl,
                   [t = timer("put_if"), cb = std::move(cb)](StoreStatus s) {
                     t();
                     if (cb) cb(s);
                   });
  }
  void remove(const std::string& key, StatusCallback cb) override {
    inner_->remove(key, [t = timer("remove"), cb = std::move(cb)](StoreStatus s) {
      t();
      if (cb) cb(s);
    });
  }
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override {
    inner_->scan_page(prefix, cursor, max, keep,
                      [t = timer("scan"), cb = std::move(cb)](StoreStatus s, ScanPage page) {
                        t();
                        if (cb) cb(s, std::move(page));
                      });
  }
  std::string_view engine() const override { return inner_->engine(); }

 private:
  // A callable that, when called, records the time since it was made.
  std::function<void()> timer(std::string_view op) const {
    std::string labels = "engine=\"" + std::string(engine()) + "\",op=\"" + std::string(op) + "\"";
    auto start = std::chrono::steady_clock::now();
    return [labels = std::move(labels), start] {
      metrics().observe(
          "mxscreen_store_operation_seconds", labels,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
  }

  std::unique_ptr<Store> inner_;
};

// One engine used by several workers (server.workers): every operation runs under one lock
// and its answer is handed on once the lock is released. Only for engines that answer before
// the call returns (memory); lmdb and redis give each worker a store of its own.
class LockedStore : public Store {
 public:
  LockedStore(std::shared_ptr<Store> engine, std::shared_ptr<std::mutex> mutex)
      : engine_(std::move(engine)), mutex_(std::move(mutex)) {}

  void get(const std::string& key, GetCallback cb) override {
    locked(std::move(cb), [&](auto answer) { engine_->get(key, answer); });
  }
  void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
           StatusCallback cb) override {
    locked(std::move(cb), [&](auto answer) { engine_->put(key, value, ttl, answer); });
  }
  void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                 IncrementCallback cb) override {
    locked(std::move(cb), [&](auto answer) { engine_->increment(key, by, ttl, answer); });
  }
  void put_if(const std::string& key, const std::optional<std::string>& expected,
              const std::string& value, std::chrono::seconds ttl, StatusCallback cb) override {
    locked(std::move(cb), [&](auto answer) { engine_->put_if(key, expected, value, ttl, answer); });
  }
  void remove(const std::string& key, StatusCallback cb) override {
    locked(std::move(cb), [&](auto answer) { engine_->remove(key, answer); });
  }
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override {
    locked(std::move(cb),
           [&](auto answer) { engine_->scan_page(prefix, cursor, max, keep, answer); });
  }
  std::string_view engine() const override { return engine_->engine(); }

 private:
  template <typename Callback, typename Operation>
  void locked(Callback cb, Operation operation) {
    std::function<void()> answer;
    {
      std::lock_guard lock(*mutex_);
      operation([&answer, &cb](auto... args) {
        answer = [cb = std::move(cb), ... args = std::move(args)]() mutable {
          if (cb) cb(std::move(args)...);
        };
      });
    }
    if (answer) answer();
  }

  std::shared_ptr<Store> engine_;
  std::shared_ptr<std::mutex> mutex_;
};

void count(std::string_view name, std::string_view engine, std::string_view key,
           std::string_view value) {
  // One reused buffer: the metrics registry finds existing series without allocating.
  thread_local std::string labels;
  labels.assign("engine=\"").append(engine).append("\",");
  labels.append(key).append("=\"").append(value).append("\"");
  metrics().inc(name, labels);
}

}  // namespace

void count_store_operation(std::string_view engine, std::string_view op) {
  count("mxscreen_store_operations_total", engine, "op", op);
}

void count_store_error(std::string_view engine, std::string_view reason) {
  count("mxscreen_store_errors_total", engine, "reason", reason);
}

std::unique_ptr<Store> shared_store(std::shared_ptr<Store> engine,
                                    std::shared_ptr<std::mutex> mutex) {
  return std::make_unique<LockedStore>(std::move(engine), std::move(mutex));
}

std::unique_ptr<Store> with_latency_metrics(std::unique_ptr<Store> store) {
  if (!store) return store;
  return std::make_unique<TimedStore>(std::move(store));
}

std::unique_ptr<Store> make_store(uv_loop_t* loop, const StoreConfig& store,
                                  const ServerConfig& server, std::string* error,
                                  const StoreLimits& limits, StoreClock clock) {
  describe_store_metrics();
  switch (store.backend) {
    case StoreBackend::kMemory:
      return std::make_unique<MemoryStore>(limits, std::move(clock));
    case StoreBackend::kLmdb: {
      std::string path = (std::filesystem::path(server.state_dir) / kLmdbFileName).string();
      return LmdbStore::open(loop, path, limits, std::move(clock), error);
    }
    case StoreBackend::kRedis:
      return RedisStore::create(loop, store.redis_url, limits, error);
  }
  if (error) *error = "unknown store backend";
  return nullptr;
}

}  // namespace mxscreen::proxy
