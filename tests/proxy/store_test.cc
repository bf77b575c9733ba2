// tests/proxy/store_test.cc: the memory and lmdb store engines with a fake clock: put/get/TTL,
// increment, put_if (compare-and-set), remove, the entry bound, persistence across re-open and kill
// -9, the background sweep, a full map failing open, and engine selection by make_store.
#include "proxy/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "proxy/metrics.h"
#include "proxy/store_lmdb.h"
#include "proxy/store_memory.h"

namespace mxscreen::proxy {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kT0 = 1'700'000'000;

// Synchronous helpers: memory and lmdb answer before the call returns.
struct Got {
  StoreStatus status = StoreStatus::kUnavailable;
  std::string value;
  bool called = false;
};

Got get(Store& store, const std::string& key) {
  Got got;
  store.get(key, [&](StoreStatus s, std::string v) { got = {s, std::move(v), true}; });
  EXPECT_TRUE(got.called);
  return got;
}

StoreStatus put(Store& store, const std::string& key, const std::string& value,
                std::chrono::seconds ttl) {
  StoreStatus status = StoreStatus::kUnavailable;
  bool called = false;
  store.put(key, value, ttl, [&](StoreStatus s) {
    status = s;
    called = true;
  });
  EXPECT_TRUE(called);
  return status;
}

std::pair<StoreStatus, int64_t> increment(Store& store, const std::string& key, int64_t by,
                                          std::chrono::seconds ttl) {
  std::pair<StoreStatus, int64_t> out{StoreStatus::kUnavailable, -1};
  store.increment(key, by, ttl, [&](StoreStatus s, int64_t v) { out = {s, v}; });
  return out;
}

StoreStatus remove(Store& store, const std::string& key) {
  StoreStatus status = StoreStatus::kUnavailable;
  store.remove(key, [&](StoreStatus s) { status = s; });
  return status;
}

// The behaviour every engine shares, run against each.
void check_put_get_expiry(Store& store, int64_t& now) {
  EXPECT_EQ(get(store, "missing").status, StoreStatus::kNotFound);
  EXPECT_EQ(put(store, "k", "v1", 10s), StoreStatus::kOk);
  Got got = get(store, "k");
  EXPECT_EQ(got.status, StoreStatus::kOk);
  EXPECT_EQ(got.value, "v1");
  EXPECT_EQ(put(store, "k", std::string("bin\0ary", 7), 10s), StoreStatus::kOk);
  EXPECT_EQ(get(store, "k").value, std::string("bin\0ary", 7));
  now += 9;
  EXPECT_EQ(get(store, "k").status, StoreStatus::kOk);
  now += 1;
  EXPECT_EQ(get(store, "k").status, StoreStatus::kNotFound);
  EXPECT_EQ(put(store, "forever", "x", 0s), StoreStatus::kOk);
  now += 100 * 86400;
  EXPECT_EQ(get(store, "forever").status, StoreStatus::kOk);
}

void check_increment(Store& store, int64_t& now) {
  EXPECT_EQ(increment(store, "c", 1, 60s), std::make_pair(StoreStatus::kOk, int64_t{1}));
  now += 50;
  EXPECT_EQ(increment(store, "c", 5, 60s), std::make_pair(StoreStatus::kOk, int64_t{6}));
  EXPECT_EQ(get(store, "c").value, "6");
  now += 10;  // the TTL counts from creation: later increments do not extend it
  EXPECT_EQ(get(store, "c").status, StoreStatus::kNotFound);
  EXPECT_EQ(increment(store, "c", -2, 60s), std::make_pair(StoreStatus::kOk, int64_t{-2}));
  EXPECT_EQ(put(store, "text", "abc", 60s), StoreStatus::kOk);
  EXPECT_EQ(increment(store, "text", 1, 60s).first, StoreStatus::kUnavailable);
  EXPECT_EQ(get(store, "text").value, "abc");
}

StoreStatus put_if(Store& store, const std::string& key, const std::optional<std::string>& expected,
                   const std::string& value, std::chrono::seconds ttl) {
  StoreStatus status = StoreStatus::kUnavailable;
  bool called = false;
  store.put_if(key, expected, value, ttl, [&](StoreStatus s) {
    status = s;
    called = true;
  });
  EXPECT_TRUE(called);
  return status;
}

// put_if: only the first of several "create" calls wins; a compare-and-set wins only on the
// value it read; an expired key counts as missing; the new TTL applies.
void check_put_if(Store& store, int64_t& now) {
  EXPECT_EQ(put_if(store, "ban:x", std::nullopt, "first", 10s), StoreStatus::kOk);
  EXPECT_EQ(put_if(store, "ban:x", std::nullopt, "second", 10s), StoreStatus::kConflict);
  EXPECT_EQ(get(store, "ban:x").value, "first");
  EXPECT_EQ(put_if(store, "ban:x", std::string("other"), "third", 10s), StoreStatus::kConflict);
  EXPECT_EQ(put_if(store, "ban:x", std::string("first"), "third", 100s), StoreStatus::kOk);
  EXPECT_EQ(get(store, "ban:x").value, "third");
  now += 99;
  EXPECT_EQ(get(store, "ban:x").status, StoreStatus::kOk);  // the TTL of the last write
  now += 1;
  EXPECT_EQ(put_if(store, "ban:x", std::string("third"), "late", 10s), StoreStatus::kConflict);
  EXPECT_EQ(put_if(store, "ban:x", std::nullopt, "again", 0s), StoreStatus::kOk);
  now += 100 * 86400;
  EXPECT_EQ(get(store, "ban:x").value, "again");
  EXPECT_EQ(put_if(store, "missing", std::string(""), "v", 10s), StoreStatus::kConflict);
  EXPECT_EQ(get(store, "missing").status, StoreStatus::kNotFound);
}

void check_remove(Store& store) {
  EXPECT_EQ(put(store, "r", "v", 60s), StoreStatus::kOk);
  EXPECT_EQ(remove(store, "r"), StoreStatus::kOk);
  EXPECT_EQ(get(store, "r").status, StoreStatus::kNotFound);
  EXPECT_EQ(remove(store, "r"), StoreStatus::kOk);
}

// scan: live keys with the prefix only, bounded by max.
std::map<std::string, std::string> scan(Store& store, const std::string& prefix,
                                        std::size_t max = 100) {
  std::map<std::string, std::string> out;
  bool called = false;
  store.scan(prefix, max, [&](StoreStatus s, std::vector<Store::Item> items) {
    EXPECT_EQ(s, StoreStatus::kOk);
    for (auto& i : items) out[i.key] = i.value;
    called = true;
  });
  EXPECT_TRUE(called);
  return out;
}

void check_scan(Store& store, int64_t& now) {
  EXPECT_TRUE(scan(store, "ban:").empty());
  EXPECT_EQ(put(store, "ban:192.0.2.1", "a", 10s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "ban:2001:db8::1", "b", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "banc:192.0.2.1", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "bam", "x", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "zzz", "x", 100s), StoreStatus::kOk);
  auto bans = scan(store, "ban:");
  EXPECT_EQ(bans,
            (std::map<std::string, std::string>{{"ban:192.0.2.1", "a"}, {"ban:2001:db8::1", "b"}}));
  EXPECT_EQ(scan(store, "ban:", 1).size(), 1u);
  now += 10;  // the first ban expired
  EXPECT_EQ(scan(store, "ban:"), (std::map<std::string, std::string>{{"ban:2001:db8::1", "b"}}));
}

// scan_page: a walk page after page meets every live key with the prefix once, each page at
// most `max` kept items, the filter applied before the bound.
std::vector<std::vector<std::string>> walk_pages(Store& store, const std::string& prefix,
                                                 std::size_t max, Store::ScanFilter keep = {}) {
  std::vector<std::vector<std::string>> pages;
  std::string cursor;
  do {
    bool called = false;
    store.scan_page(prefix, cursor, max, keep, [&](StoreStatus s, Store::ScanPage page) {
      EXPECT_EQ(s, StoreStatus::kOk);
      std::vector<std::string> keys;
      for (auto& i : page.items) keys.push_back(i.key);
      pages.push_back(keys);
      cursor = page.next;
      called = true;
    });
    EXPECT_TRUE(called);
  } while (!cursor.empty() && pages.size() < 1000);
  return pages;
}

void check_scan_page(Store& store, int64_t& now) {
  for (int i = 0; i < 25; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "gl:10.0.0.0/24:s%02d:r", i);
    EXPECT_EQ(put(store, key, i % 2 ? "odd" : "even", 100s), StoreStatus::kOk);
  }
  EXPECT_EQ(put(store, "gl:dead", "even", 1s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "gla:10.0.0.1", "x", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "gk", "x", 100s), StoreStatus::kOk);
  now += 1;  // gl:dead expired
  auto pages = walk_pages(store, "gl:", 10);
  std::set<std::string> seen;
  std::size_t total = 0;
  for (const auto& p : pages) {
    EXPECT_LE(p.size(), 10u);
    total += p.size();
    seen.insert(p.begin(), p.end());
  }
  EXPECT_EQ(total, 25u);  // each once
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.count("gl:dead"), 0u);
  EXPECT_GE(pages.size(), 3u);
  auto odd =
      walk_pages(store, "gl:", 4, [](std::string_view, std::string_view v) { return v == "odd"; });
  total = 0;
  for (const auto& p : odd) total += p.size();
  EXPECT_EQ(total, 12u);
  EXPECT_TRUE(walk_pages(store, "none:", 5).front().empty());
}

TEST(StoreMemory, ScanPagesWalkEveryKeyOnce) {
  int64_t now = kT0;
  MemoryStore store({}, [&] { return now; });
  check_scan_page(store, now);
}

TEST(StoreMemory, ScanListsLiveKeysWithThePrefix) {
  int64_t now = kT0;
  MemoryStore store({}, [&] { return now; });
  check_scan(store, now);
}

TEST(StoreLatency, EveryOperationIsTimedByEngineAndOp) {
  auto store =
      with_latency_metrics(std::make_unique<MemoryStore>(StoreLimits{}, [] { return kT0; }));
  const std::string get_labels = "engine=\"memory\",op=\"get\"";
  const std::string put_labels = "engine=\"memory\",op=\"put\"";
  uint64_t gets = metrics().observations("mxscreen_store_operation_seconds", get_labels);
  uint64_t puts = metrics().observations("mxscreen_store_operation_seconds", put_labels);
  EXPECT_EQ(store->engine(), "memory");
  EXPECT_EQ(put(*store, "k", "v", 10s), StoreStatus::kOk);
  EXPECT_EQ(get(*store, "k").value, "v");
  EXPECT_EQ(get(*store, "nothing").status, StoreStatus::kNotFound);
  EXPECT_EQ(metrics().observations("mxscreen_store_operation_seconds", get_labels), gets + 2);
  EXPECT_EQ(metrics().observations("mxscreen_store_operation_seconds", put_labels), puts + 1);
  const std::string text = metrics().render();
  EXPECT_NE(text.find("# TYPE mxscreen_store_operation_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("mxscreen_store_operation_seconds_bucket{" + get_labels + ",le=\"+Inf\"} "),
            std::string::npos);
  EXPECT_NE(text.find("mxscreen_store_operation_seconds_count{" + get_labels + "} "),
            std::string::npos);
}

TEST(StoreMemory, PutGetAndTtlExpiry) {
  int64_t now = kT0;
  MemoryStore store({}, [&] { return now; });
  check_put_get_expiry(store, now);
}

TEST(StoreMemory, Increment) {
  int64_t now = kT0;
  MemoryStore store({}, [&] { return now; });
  check_increment(store, now);
}

TEST(StoreMemory, PutIf) {
  int64_t now = kT0;
  MemoryStore store({}, [&] { return now; });
  check_put_if(store, now);
}

TEST(StoreMemory, SharedByWorkersPutIfHasOneWinner) {
  int64_t now = kT0;
  auto engine = std::make_shared<MemoryStore>(StoreLimits{}, [&] { return now; });
  auto mutex = std::make_shared<std::mutex>();
  auto a = shared_store(engine, mutex);
  auto b = shared_store(engine, mutex);
  check_put_if(*a, now);
  EXPECT_EQ(put_if(*a, "ban:y", std::nullopt, "a", 10s), StoreStatus::kOk);
  EXPECT_EQ(put_if(*b, "ban:y", std::nullopt, "b", 10s), StoreStatus::kConflict);
}

TEST(StoreMemory, Remove) {
  MemoryStore store({}, [] { return kT0; });
  check_remove(store);
}

TEST(StoreMemory, FullStoreEvictsExpiredElseRefuses) {
  int64_t now = kT0;
  StoreLimits limits;
  limits.max_entries = 3;
  MemoryStore store(limits, [&] { return now; });
  uint64_t errors =
      metrics().value("mxscreen_store_errors_total", "engine=\"memory\",reason=\"full\"");
  EXPECT_EQ(put(store, "a", "1", 10s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "b", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "c", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, "d", "1", 100s), StoreStatus::kUnavailable);
  EXPECT_EQ(increment(store, "e", 1, 100s).first, StoreStatus::kUnavailable);
  EXPECT_EQ(put(store, "b", "2", 100s), StoreStatus::kOk);  // an existing key is no new entry
  EXPECT_EQ(metrics().value("mxscreen_store_errors_total", "engine=\"memory\",reason=\"full\""),
            errors + 2);
  now += 10;  // "a" expired: its slot is reused
  EXPECT_EQ(put(store, "d", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(get(store, "d").status, StoreStatus::kOk);
}

// store.memory_max_bytes: long keys fill the byte budget long before max_entries; expired
// entries make room, live ones are never pushed out, and the new key is refused (fail open).
TEST(StoreMemory, ByteBoundRefusesNewKeysKeepsLiveOnes) {
  int64_t now = kT0;
  StoreLimits limits;
  const std::string big(1000, 'k');
  limits.memory_max_bytes = 3 * (1000 + 1 + 1 + MemoryStore::kEntryOverhead);
  MemoryStore store(limits, [&] { return now; });
  uint64_t errors =
      metrics().value("mxscreen_store_errors_total", "engine=\"memory\",reason=\"full\"");
  EXPECT_EQ(put(store, big + "a", "1", 10s), StoreStatus::kOk);
  EXPECT_EQ(put(store, big + "b", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(put(store, big + "c", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(store.bytes(), limits.memory_max_bytes);
  EXPECT_EQ(put(store, big + "d", "1", 100s), StoreStatus::kUnavailable);
  EXPECT_EQ(increment(store, big + "e", 1, 100s).first, StoreStatus::kUnavailable);
  EXPECT_EQ(put(store, big + "b", "22", 100s), StoreStatus::kUnavailable);  // would grow past
  EXPECT_EQ(put(store, big + "b", "2", 100s), StoreStatus::kOk);            // same size: fine
  EXPECT_EQ(metrics().value("mxscreen_store_errors_total", "engine=\"memory\",reason=\"full\""),
            errors + 3);
  EXPECT_EQ(get(store, big + "b").value, "2");
  now += 10;  // "a" expired: its bytes are reused
  EXPECT_EQ(put(store, big + "d", "1", 100s), StoreStatus::kOk);
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.bytes(), limits.memory_max_bytes);
  EXPECT_EQ(remove(store, big + "d"), StoreStatus::kOk);
  EXPECT_EQ(store.bytes(), 2 * (1000 + 1 + 1 + MemoryStore::kEntryOverhead));
  EXPECT_EQ(increment(store, "n", 5, 100s).second, 5);
  EXPECT_EQ(increment(store, "n", 5, 100s).second, 10);
  EXPECT_EQ(store.bytes(),
            2 * (1000 + 1 + 1 + MemoryStore::kEntryOverhead) + 1 + 2 + MemoryStore::kEntryOverhead);
}

class StoreLmdb : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    char tmpl[] = "/tmp/mxscreen-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/" + kLmdbFileName;
  }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_NOWAIT);  // close callbacks of destroyed stores
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<LmdbStore> open(const StoreLimits& limits = {}) {
    std::string error;
    auto store = LmdbStore::open(
        &loop_, path_, limits, [this] { return now_; }, &error);
    EXPECT_TRUE(store) << error;
    return store;
  }

  uv_loop_t loop_{};
  std::string dir_;
  std::string path_;
  int64_t now_ = kT0;
};

TEST_F(StoreLmdb, PutGetAndTtlExpiry) {
  auto store = open();
  ASSERT_TRUE(store);
  check_put_get_expiry(*store, now_);
}

TEST_F(StoreLmdb, Increment) {
  auto store = open();
  ASSERT_TRUE(store);
  check_increment(*store, now_);
}

TEST_F(StoreLmdb, PutIf) {
  auto store = open();
  ASSERT_TRUE(store);
  check_put_if(*store, now_);
}

// Two workers' stores on one file: the write transaction makes put_if and increment atomic
// between them, from two threads at once.
TEST_F(StoreLmdb, TwoThreadsRaceOneWinnerAndExactCounts) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  std::atomic<int> wins{0};
  std::atomic<int> conflicts{0};
  auto race = [&](Store& store) {
    for (int i = 0; i < 200; ++i) {
      store.increment("fmx:c", 1, 60s);
      store.put_if(std::string("ban:").append(std::to_string(i)), std::nullopt, "v", 60s,
                   [&](StoreStatus s) { (s == StoreStatus::kOk ? wins : conflicts)++; });
    }
  };
  std::thread ta([&] { race(*a); });
  std::thread tb([&] { race(*b); });
  ta.join();
  tb.join();
  EXPECT_EQ(wins.load(), 200);
  EXPECT_EQ(conflicts.load(), 200);
  EXPECT_EQ(get(*a, "fmx:c").value, "400");
}

TEST_F(StoreLmdb, Remove) {
  auto store = open();
  ASSERT_TRUE(store);
  check_remove(*store);
}

TEST_F(StoreLmdb, ScanPagesWalkEveryKeyOnce) {
  auto store = open();
  check_scan_page(*store, now_);
}

TEST_F(StoreLmdb, ScanPageLooksAtABoundedNumberOfKeys) {
  StoreLimits limits;
  limits.scan_page_examined = 20;
  auto store = open(limits);
  for (int i = 0; i < 25; ++i) put(*store, "gl:" + std::to_string(100 + i), "v", 100s);
  // A filter that keeps nothing: the first page stops at the bound, empty, with more to come.
  auto none = [](std::string_view, std::string_view) { return false; };
  bool called = false;
  store->scan_page("gl:", "", 10, none, [&](StoreStatus s, Store::ScanPage page) {
    EXPECT_EQ(s, StoreStatus::kOk);
    EXPECT_TRUE(page.items.empty());
    EXPECT_EQ(page.next, "gl:119");
    called = true;
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(walk_pages(*store, "gl:", 10, none).size(), 2u);
  auto all = walk_pages(*store, "gl:", 100);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].size() + all[1].size(), 25u);
}

TEST_F(StoreLmdb, ScanListsLiveKeysWithThePrefix) {
  auto store = open();
  ASSERT_TRUE(store);
  check_scan(*store, now_);
}

TEST_F(StoreLmdb, LongKeysAreStoredUnderAHash) {
  auto store = open();
  ASSERT_TRUE(store);
  std::string a = "gl:192.0.2.0/24:" + std::string(1000, 'a') + ":x";
  std::string b = "gl:192.0.2.0/24:" + std::string(1000, 'a') + ":y";
  EXPECT_EQ(put(*store, a, "A", 60s), StoreStatus::kOk);
  EXPECT_EQ(put(*store, b, "B", 60s), StoreStatus::kOk);
  EXPECT_EQ(get(*store, a).value, "A");
  EXPECT_EQ(get(*store, b).value, "B");
}

TEST_F(StoreLmdb, ValuesAndTtlsSurviveReopen) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_EQ(put(*store, "gl:x", "1:2:0", 100s), StoreStatus::kOk);
    EXPECT_EQ(increment(*store, "n", 7, 100s).second, 7);
  }
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(get(*store, "gl:x").value, "1:2:0");
  EXPECT_EQ(increment(*store, "n", 1, 100s).second, 8);
  now_ += 100;  // absolute expiry on disk: still expires on time after the restart
  EXPECT_EQ(get(*store, "gl:x").status, StoreStatus::kNotFound);
}

TEST_F(StoreLmdb, AcknowledgedWritesSurviveKill9) {
  int ack[2];
  ASSERT_EQ(pipe(ack), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ack[0]);
    std::string error;
    auto store = LmdbStore::open(
        nullptr, path_, {}, [] { return kT0; }, &error);
    if (!store) _exit(1);
    for (int i = 0; i < 100; ++i) {
      // append, not "k" + std::to_string(i): GCC 12 at -O2 warns on the latter (a bogus
      // -Wrestrict, GCC bug 105329), which stops the Release -Werror build.
      store->put(std::string("k").append(std::to_string(i)),
                 std::string("v").append(std::to_string(i)), 3600s, [&](StoreStatus s) {
                   if (s == StoreStatus::kOk) (void)!write(ack[1], "+", 1);
                 });
    }
    pause();  // killed here, never closing the environment
    _exit(0);
  }
  close(ack[1]);
  char buf[100];
  size_t acked = 0;
  while (acked < sizeof buf) {
    ssize_t n = read(ack[0], buf, sizeof buf - acked);
    if (n <= 0) break;
    acked += static_cast<size_t>(n);
  }
  close(ack[0]);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(acked, 100u);
  auto store = open();
  ASSERT_TRUE(store);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(get(*store, std::string("k").append(std::to_string(i))).value,
              std::string("v").append(std::to_string(i)));
  }
}

TEST_F(StoreLmdb, SweepRemovesExpiredKeysInBoundedBatches) {
  StoreLimits limits;
  limits.sweep_batch = 7;
  auto store = open(limits);
  ASSERT_TRUE(store);
  for (int i = 0; i < 100; ++i) {
    put(*store, std::string("k").append(std::to_string(i)), "v", i % 2 == 0 ? 10s : 1000s);
  }
  EXPECT_EQ(store->entry_count(), 100u);
  now_ += 10;
  int steps = 1;
  while (!store->sweep_step()) ++steps;
  EXPECT_GE(steps, 100 / 7);
  EXPECT_EQ(store->entry_count(), 50u);
  EXPECT_EQ(get(*store, "k1").status, StoreStatus::kOk);
}

TEST_F(StoreLmdb, SweepRunsOnTheLoopTimer) {
  StoreLimits limits;
  limits.sweep_interval = 0s;  // fire at once: the test must not wait a minute
  limits.sweep_batch = 3;
  auto store = open(limits);
  ASSERT_TRUE(store);
  for (int i = 0; i < 10; ++i) put(*store, std::string("k").append(std::to_string(i)), "v", 5s);
  now_ += 5;
  // The sweep timer does not keep a loop alive by itself; a server's listeners do.
  uv_timer_t keepalive;
  uv_timer_init(&loop_, &keepalive);
  uv_timer_start(
      &keepalive, [](uv_timer_t*) {}, 60000, 0);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (store->entry_count() > 0 && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  EXPECT_EQ(store->entry_count(), 0u);
  uv_close(reinterpret_cast<uv_handle_t*>(&keepalive), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // `keepalive` lives on this stack frame
}

TEST_F(StoreLmdb, FullMapFailsOpenAndRecoversAfterTheSweep) {
  StoreLimits limits;
  limits.map_size = 64 * 1024;  // a few pages
  auto store = open(limits);
  ASSERT_TRUE(store);
  uint64_t errors =
      metrics().value("mxscreen_store_errors_total", "engine=\"lmdb\",reason=\"map_full\"");
  std::string value(200, 'x');
  int written = 0;
  for (; written < 10000; ++written) {
    if (put(*store, std::string("k").append(std::to_string(written)), value, 10s) !=
        StoreStatus::kOk)
      break;
  }
  ASSERT_LT(written, 10000) << "the map never filled";
  EXPECT_GT(written, 0);
  EXPECT_EQ(put(*store, "one-more", value, 10s), StoreStatus::kUnavailable);
  EXPECT_GT(metrics().value("mxscreen_store_errors_total", "engine=\"lmdb\",reason=\"map_full\""),
            errors);
  EXPECT_EQ(get(*store, "k0").value, value);  // reads keep working
  now_ += 10;
  while (!store->sweep_step()) {
  }
  EXPECT_EQ(store->entry_count(), 0u);
  EXPECT_EQ(put(*store, "again", "v", 10s), StoreStatus::kOk);
}

TEST_F(StoreLmdb, UnusableStateDirIsAnErrorNotACrash) {
  std::string file = dir_ + "/plain-file";
  std::ofstream(file) << "x";
  std::string error;
  auto store =
      LmdbStore::open(&loop_, file + "/sub/" + kLmdbFileName, {}, wall_clock_seconds, &error);
  EXPECT_FALSE(store);
  EXPECT_NE(error.find("lmdb "), std::string::npos) << error;
}

TEST_F(StoreLmdb, MakeStoreChoosesTheEngine) {
  StoreConfig config;
  ServerConfig server;
  server.state_dir = dir_;
  std::string error;
  config.backend = StoreBackend::kLmdb;
  auto lmdb = make_store(&loop_, config, server, &error);
  ASSERT_TRUE(lmdb) << error;
  EXPECT_EQ(lmdb->engine(), "lmdb");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/mxscreen.lmdb"));
  config.backend = StoreBackend::kMemory;
  EXPECT_EQ(make_store(&loop_, config, server, &error)->engine(), "memory");
  config.backend = StoreBackend::kRedis;
  config.redis_url = "http://nope";
  EXPECT_FALSE(make_store(&loop_, config, server, &error));
  EXPECT_NE(error.find("redis://"), std::string::npos) << error;
  uint64_t ops = metrics().value("mxscreen_store_operations_total", "engine=\"lmdb\",op=\"get\"");
  get(*lmdb, "x");
  EXPECT_EQ(metrics().value("mxscreen_store_operations_total", "engine=\"lmdb\",op=\"get\""),
            ops + 1);
}

}  // namespace
}  // namespace mxscreen::proxy
