// proxy/store.cc: engine selection (store.backend) and the metrics the engines share.
#include "proxy/store.h"

#include <filesystem>

#include "proxy/metrics.h"
#include "proxy/store_lmdb.h"
#include "proxy/store_memory.h"
#include "proxy/store_redis.h"

namespace mxscreen::proxy {

Store::~Store() = default;

std::string_view to_string(StoreStatus status) {
  switch (status) {
    case StoreStatus::kOk:
      return "ok";
    case StoreStatus::kNotFound:
      return "not found";
    case StoreStatus::kUnavailable:
      return "unavailable";
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
}

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
