// bench/micro/store_bench.cc: state store operations per second (memory and lmdb engines; the
// lmdb put is one synced write transaction, as in production) and the cost of the greylist
// decision and key. Redis needs a server and is measured by the integration suite.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "checks/greylist.h"
#include "proxy/store_lmdb.h"
#include "proxy/store_memory.h"

namespace mxscreen {
namespace {

using namespace std::chrono_literals;

std::string key(int64_t i) {
  return "gl:192.0.2.0/24:sender" + std::to_string(i) + "@example.org:rcpt@example.net";
}

// A fresh lmdb file in a temporary directory, removed afterwards.
struct TempLmdb {
  TempLmdb() {
    char tmpl[] = "/tmp/mxscreen-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    std::string error;
    store = proxy::LmdbStore::open(nullptr, dir + "/" + proxy::kLmdbFileName, {},
                                   proxy::wall_clock_seconds, &error);
    if (!store) throw std::runtime_error(error);
  }
  ~TempLmdb() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::unique_ptr<proxy::LmdbStore> store;
};

void fill(proxy::Store& store, int64_t n) {
  for (int64_t i = 0; i < n; ++i) store.put(key(i), "1700000000:1700000000:0", 3600s);
}

void BM_MemoryPut(benchmark::State& state) {
  proxy::MemoryStore store;
  int64_t i = 0;
  for (auto _ : state) store.put(key(i++ % 100000), "1700000000:1700000000:0", 3600s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MemoryPut);

void BM_MemoryGet(benchmark::State& state) {
  proxy::MemoryStore store;
  fill(store, 100000);
  int64_t i = 0;
  for (auto _ : state) {
    store.get(key(i++ % 100000), [](proxy::StoreStatus s, std::string v) {
      benchmark::DoNotOptimize(s);
      benchmark::DoNotOptimize(v);
    });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MemoryGet);

void BM_LmdbPutSynced(benchmark::State& state) {
  TempLmdb db;
  int64_t i = 0;
  for (auto _ : state) db.store->put(key(i++ % 100000), "1700000000:1700000000:0", 3600s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LmdbPutSynced)->UseRealTime();

void BM_LmdbIncrementSynced(benchmark::State& state) {
  TempLmdb db;
  int64_t i = 0;
  for (auto _ : state) db.store->increment("gla:192.0.2." + std::to_string(i++ % 256), 1, 3600s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LmdbIncrementSynced)->UseRealTime();

void BM_LmdbGet(benchmark::State& state) {
  TempLmdb db;
  fill(*db.store, 10000);
  int64_t i = 0;
  for (auto _ : state) {
    db.store->get(key(i++ % 10000), [](proxy::StoreStatus s, std::string v) {
      benchmark::DoNotOptimize(s);
      benchmark::DoNotOptimize(v);
    });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LmdbGet);

void BM_GreylistKey(benchmark::State& state) {
  checks::GreylistPolicy policy;
  auto client = *protocol::IpAddress::parse("192.0.2.77");
  for (auto _ : state) {
    benchmark::DoNotOptimize(checks::greylist_key(client, "prvs=0123abcdef=Bounce+42@Example.org",
                                                  "Bob@Example.net", policy));
  }
}
BENCHMARK(BM_GreylistKey);

void BM_GreylistDecide(benchmark::State& state) {
  checks::GreylistPolicy policy;
  std::string record = checks::GreylistRecord{1'700'000'000, 1'700'000'000, false}.to_string();
  int64_t now = 1'700'000'400;
  for (auto _ : state) {
    benchmark::DoNotOptimize(checks::decide(std::string_view(record), now, policy));
  }
}
BENCHMARK(BM_GreylistDecide);

}  // namespace
}  // namespace mxscreen
