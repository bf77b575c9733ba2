// tests/proxy/store_redis_test.cc: the redis engine against a real redis-server started on a
// free loopback port: put/get/increment/TTL, fail-open while Redis is down or stopped, and
// reconnection by itself when it returns. Waits are polls with deadlines, never fixed sleeps.
#include "proxy/store_redis.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

TEST(StoreRedisUrl, Parses) {
  std::string error;
  auto plain = RedisUrl::parse("redis://127.0.0.1:6379/0", &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 6379);
  EXPECT_EQ(plain->db, 0);
  EXPECT_TRUE(plain->password.empty());
  EXPECT_EQ(plain->endpoint(), "127.0.0.1:6379");

  auto full = RedisUrl::parse("redis://:s%40cret@10.0.0.1:7000/3", &error);
  ASSERT_TRUE(full) << error;
  EXPECT_EQ(full->password, "s@cret");
  EXPECT_TRUE(full->username.empty());
  EXPECT_EQ(full->port, 7000);
  EXPECT_EQ(full->db, 3);

  auto acl = RedisUrl::parse("redis://mx:pw@[::1]/2", &error);
  ASSERT_TRUE(acl) << error;
  EXPECT_EQ(acl->username, "mx");
  EXPECT_EQ(acl->password, "pw");
  EXPECT_EQ(acl->host, "::1");
  EXPECT_EQ(acl->port, 6379);
  EXPECT_EQ(acl->endpoint(), "[::1]:6379");

  EXPECT_TRUE(RedisUrl::parse("redis://localhost", &error));
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                          "redis://[::1", "redis://:%4@h"}) {
    EXPECT_FALSE(RedisUrl::parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

std::string find_redis_server() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
    std::string path = std::string(dir) + "/redis-server";
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class StoreRedis : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = find_redis_server();
    if (binary_.empty()) GTEST_SKIP() << "redis-server not installed";
    port_ = free_port();
    uv_loop_init(&loop_);
    // The engine's own timers do not keep a loop alive (a server's listeners do); this one
    // also bounds each UV_RUN_ONCE so that deadlines are checked.
    uv_timer_init(&loop_, &keepalive_);
    uv_timer_start(
        &keepalive_, [](uv_timer_t*) {}, 20, 20);
  }

  void TearDown() override {
    if (binary_.empty()) return;
    store_.reset();
    stop_redis(SIGKILL);
    uv_close(reinterpret_cast<uv_handle_t*>(&keepalive_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  void start_redis(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        binary_,        "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no",     "--daemonize",         "no"};
    args.insert(args.end(), extra.begin(), extra.end());
    redis_pid_ = fork();
    ASSERT_GE(redis_pid_, 0);
    if (redis_pid_ == 0) {
      int null = open("/dev/null", O_RDWR);
      dup2(null, 1);
      dup2(null, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  void stop_redis(int sig) {
    if (redis_pid_ <= 0) return;
    kill(redis_pid_, sig);
    waitpid(redis_pid_, nullptr, 0);
    redis_pid_ = -1;
  }

  std::unique_ptr<RedisStore> make(const std::string& url, StoreLimits limits = {}) {
    std::string error;
    auto store = RedisStore::create(&loop_, url, limits, &error);
    EXPECT_TRUE(store) << error;
    return store;
  }

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  // Runs the loop until `done` or the deadline; true if `done`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    auto deadline = SteadyClock::now() + limit;
    while (!done()) {
      if (SteadyClock::now() >= deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

  StoreStatus get(const std::string& key, std::string* value = nullptr) {
    StoreStatus status = StoreStatus::kUnavailable;
    bool done = false;
    store_->get(key, [&](StoreStatus s, std::string v) {
      status = s;
      if (value) *value = std::move(v);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }, 3000ms)) << "get " << key << " hung";
    return status;
  }

  StoreStatus put(const std::string& key, const std::string& value, std::chrono::seconds ttl) {
    StoreStatus status = StoreStatus::kUnavailable;
    bool done = false;
    store_->put(key, value, ttl, [&](StoreStatus s) {
      status = s;
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }, 3000ms)) << "put " << key << " hung";
    return status;
  }

  std::pair<StoreStatus, int64_t> increment(const std::string& key, int64_t by,
                                            std::chrono::seconds ttl) {
    std::pair<StoreStatus, int64_t> out{StoreStatus::kUnavailable, 0};
    bool done = false;
    store_->increment(key, by, ttl, [&](StoreStatus s, int64_t v) {
      out = {s, v};
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }, 3000ms)) << "increment " << key << " hung";
    return out;
  }

  StoreStatus put_if(const std::string& key, const std::optional<std::string>& expected,
                     const std::string& value, std::chrono::seconds ttl) {
    StoreStatus status = StoreStatus::kUnavailable;
    bool done = false;
    store_->put_if(key, expected, value, ttl, [&](StoreStatus s) {
      status = s;
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }, 3000ms)) << "put_if " << key << " hung";
    return status;
  }

  bool wait_ready(std::chrono::milliseconds limit) {
    return run_until([&] { return store_->ready(); }, limit);
  }

  std::string binary_;
  uint16_t port_ = 0;
  pid_t redis_pid_ = -1;
  uv_loop_t loop_{};
  uv_timer_t keepalive_{};
  std::unique_ptr<RedisStore> store_;
};

TEST_F(StoreRedis, PutGetIncrementTtlRemove) {
  start_redis();
  StoreLimits limits;
  limits.redis_backoff_min = 50ms;  // redis-server may still be starting
  limits.redis_backoff_max = 200ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));
  EXPECT_EQ(store_->engine(), "redis");

  std::string value;
  EXPECT_EQ(get("missing"), StoreStatus::kNotFound);
  EXPECT_EQ(put("gl:k", std::string("a\0b", 3), 60s), StoreStatus::kOk);
  EXPECT_EQ(get("gl:k", &value), StoreStatus::kOk);
  EXPECT_EQ(value, std::string("a\0b", 3));

  EXPECT_EQ(increment("n", 2, 60s), std::make_pair(StoreStatus::kOk, int64_t{2}));
  EXPECT_EQ(increment("n", 3, 60s), std::make_pair(StoreStatus::kOk, int64_t{5}));
  EXPECT_EQ(get("n", &value), StoreStatus::kOk);
  EXPECT_EQ(value, "5");
  EXPECT_EQ(put("text", "abc", 60s), StoreStatus::kOk);
  EXPECT_EQ(increment("text", 1, 60s).first, StoreStatus::kUnavailable);

  bool removed = false;
  store_->remove("gl:k", [&](StoreStatus s) { removed = s == StoreStatus::kOk; });
  ASSERT_TRUE(run_until([&] { return removed; }, 3s));
  EXPECT_EQ(get("gl:k"), StoreStatus::kNotFound);

  // Native TTLs: a 1 s key and a counter created with 1 s both vanish; a counter's later
  // increments do not extend its TTL.
  EXPECT_EQ(put("short", "v", 1s), StoreStatus::kOk);
  EXPECT_EQ(increment("short-counter", 1, 1s).second, 1);
  EXPECT_EQ(increment("short-counter", 1, 100s).second, 2);
  EXPECT_TRUE(run_until([&] { return get("short") == StoreStatus::kNotFound; }, 5s));
  EXPECT_TRUE(run_until([&] { return get("short-counter") == StoreStatus::kNotFound; }, 5s));
}

// SET NX and the compare-and-set script; a burst of put_if sent at once, before any answer,
// has exactly one winner (what several sessions racing to ban one client do).
TEST_F(StoreRedis, PutIfIsSetNxAndCompareAndSet) {
  start_redis();
  StoreLimits limits;
  limits.redis_backoff_min = 50ms;
  limits.redis_backoff_max = 200ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));

  std::string value;
  EXPECT_EQ(put_if("ban:x", std::nullopt, "first", 60s), StoreStatus::kOk);
  EXPECT_EQ(put_if("ban:x", std::nullopt, "second", 60s), StoreStatus::kConflict);
  EXPECT_EQ(put_if("ban:x", std::string("other"), "third", 60s), StoreStatus::kConflict);
  EXPECT_EQ(get("ban:x", &value), StoreStatus::kOk);
  EXPECT_EQ(value, "first");
  EXPECT_EQ(put_if("ban:x", std::string("first"), std::string("t\0b", 3), 0s), StoreStatus::kOk);
  EXPECT_EQ(get("ban:x", &value), StoreStatus::kOk);
  EXPECT_EQ(value, std::string("t\0b", 3));
  EXPECT_EQ(put_if("missing", std::string(""), "v", 60s), StoreStatus::kConflict);
  EXPECT_EQ(get("missing"), StoreStatus::kNotFound);
  EXPECT_EQ(put_if("short", std::nullopt, "v", 1s), StoreStatus::kOk);
  EXPECT_TRUE(run_until([&] { return get("short") == StoreStatus::kNotFound; }, 5s));

  int wins = 0;
  int conflicts = 0;
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    store_->put_if("ban:burst", std::nullopt, std::to_string(i), 60s, [&](StoreStatus s) {
      ++answered;
      if (s == StoreStatus::kOk) ++wins;
      if (s == StoreStatus::kConflict) ++conflicts;
    });
  }
  ASSERT_TRUE(run_until([&] { return answered == 20; }, 3s));
  EXPECT_EQ(wins, 1);
  EXPECT_EQ(conflicts, 19);
}

TEST_F(StoreRedis, ScanWalksTheKeySpaceForAPrefix) {
  start_redis();
  StoreLimits limits;
  limits.redis_backoff_min = 50ms;
  limits.redis_backoff_max = 200ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));
  // More keys than one SCAN step (COUNT 1000) returns, so the cursor is followed.
  for (int i = 0; i < 1500; ++i) {
    store_->put("ban:10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), "v", 60s);
    store_->put("other:" + std::to_string(i), "v", 60s);
  }
  EXPECT_EQ(put("ban:*literal", "glob", 60s), StoreStatus::kOk);
  auto scan = [&](const std::string& prefix, std::size_t max) {
    std::vector<Store::Item> got;
    StoreStatus status = StoreStatus::kUnavailable;
    bool done = false;
    store_->scan(prefix, max, [&](StoreStatus s, std::vector<Store::Item> items) {
      status = s;
      got = std::move(items);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }, 5s));
    EXPECT_EQ(status, StoreStatus::kOk);
    return got;
  };
  EXPECT_EQ(scan("ban:", 10000).size(), 1501u);
  EXPECT_EQ(scan("ban:", 10).size(), 10u);
  auto literal = scan("ban:*", 10000);  // the star is a character here, not a glob
  ASSERT_EQ(literal.size(), 1u);
  EXPECT_EQ(literal[0].value, "glob");
  EXPECT_TRUE(scan("none:", 10).empty());

  // Page by page with SCAN's cursor: every key met (SCAN may repeat one while Redis rehashes),
  // each page about `max` items, the filter applied before the bound.
  auto walk = [&](std::size_t max, Store::ScanFilter keep) {
    std::set<std::string> seen;
    std::string cursor;
    std::size_t pages = 0;
    do {
      bool done = false;
      store_->scan_page("ban:", cursor, max, keep, [&](StoreStatus s, Store::ScanPage page) {
        EXPECT_EQ(s, StoreStatus::kOk);
        EXPECT_LE(page.items.size(), max + 20);  // one SCAN step's overshoot at most
        for (auto& i : page.items) seen.insert(i.key);
        cursor = page.next;
        done = true;
      });
      EXPECT_TRUE(run_until([&] { return done; }, 5s));
    } while (!cursor.empty() && ++pages < 1000);
    EXPECT_GT(pages, 1u);
    return seen;
  };
  EXPECT_EQ(walk(100, {}).size(), 1501u);
  auto tens = walk(50, [](std::string_view key, std::string_view) { return key.ends_with("0"); });
  EXPECT_EQ(tens.size(), 152u);  // the addresses ending in 0 among 10.0.0.0 .. 10.0.5.219
  bool refused = false;
  store_->scan_page("ban:", "not-a-cursor", 10, {}, [&](StoreStatus s, Store::ScanPage) {
    EXPECT_EQ(s, StoreStatus::kNotFound);
    refused = true;
  });
  EXPECT_TRUE(refused);
  // Down: kUnavailable at once, not a hang.
  stop_redis(SIGKILL);
  ASSERT_TRUE(run_until([&] { return !store_->ready(); }, 5s));
  bool answered = false;
  store_->scan("ban:", 10, [&](StoreStatus s, std::vector<Store::Item>) {
    EXPECT_EQ(s, StoreStatus::kUnavailable);
    answered = true;
  });
  EXPECT_TRUE(run_until([&] { return answered; }, 3s));
}

TEST_F(StoreRedis, FailsOpenWhileDownAndReconnectsByItself) {
  start_redis();
  StoreLimits limits;
  limits.redis_backoff_min = 100ms;
  limits.redis_backoff_max = 400ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));
  ASSERT_EQ(put("before", "1", 60s), StoreStatus::kOk);

  uint64_t errors =
      metrics().value("mxscreen_store_errors_total", "engine=\"redis\",reason=\"down\"");
  stop_redis(SIGKILL);
  // The loss is noticed promptly, and from then on every call answers at once.
  auto start = SteadyClock::now();
  EXPECT_TRUE(run_until([&] { return get("before") == StoreStatus::kUnavailable; }, 3s));
  EXPECT_LT(SteadyClock::now() - start, 3s);
  bool answered = false;
  store_->put("during", "x", 60s, [&](StoreStatus s) {
    answered = true;
    EXPECT_EQ(s, StoreStatus::kUnavailable);
  });
  EXPECT_TRUE(answered) << "a call while Redis is down must answer at once";
  EXPECT_GT(metrics().value("mxscreen_store_errors_total", "engine=\"redis\",reason=\"down\""),
            errors);

  start_redis();  // same port, empty data (no persistence)
  EXPECT_TRUE(run_until([&] { return put("after", "2", 60s) == StoreStatus::kOk; }, 15s));
  std::string value;
  EXPECT_EQ(get("after", &value), StoreStatus::kOk);
  EXPECT_EQ(value, "2");
}

TEST_F(StoreRedis, UnreachableAtStartFailsOpenThenConnects) {
  StoreLimits limits;
  limits.redis_backoff_min = 100ms;
  limits.redis_backoff_max = 200ms;
  store_ = make(url(), limits);  // nothing listens yet
  EXPECT_FALSE(store_->ready());
  bool answered = false;
  store_->get("k", [&](StoreStatus s, std::string) {
    answered = true;
    EXPECT_EQ(s, StoreStatus::kUnavailable);
  });
  EXPECT_TRUE(answered);
  start_redis();
  EXPECT_TRUE(wait_ready(15s));
  EXPECT_EQ(put("k", "v", 60s), StoreStatus::kOk);
}

TEST_F(StoreRedis, StoppedRedisTimesOutAndFailsOpen) {
  start_redis();
  StoreLimits limits;
  limits.redis_timeout = 300ms;
  limits.redis_backoff_min = 100ms;
  limits.redis_backoff_max = 200ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));
  kill(redis_pid_, SIGSTOP);  // connected but silent: only the timeout can tell
  auto start = SteadyClock::now();
  EXPECT_EQ(get("k"), StoreStatus::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, 2s);
  kill(redis_pid_, SIGCONT);
  EXPECT_TRUE(run_until([&] { return put("k", "v", 60s) == StoreStatus::kOk; }, 15s));
}

TEST_F(StoreRedis, PasswordAndDatabaseFromTheUrl) {
  start_redis({"--requirepass", "s3cret"});
  StoreLimits limits;
  limits.redis_backoff_min = 50ms;
  limits.redis_backoff_max = 200ms;
  store_ = make("redis://:s3cret@127.0.0.1:" + std::to_string(port_) + "/3", limits);
  ASSERT_TRUE(wait_ready(10s));
  EXPECT_EQ(put("k", "in-db-3", 60s), StoreStatus::kOk);
  store_ = make("redis://:wrong@127.0.0.1:" + std::to_string(port_) + "/3", limits);
  EXPECT_FALSE(wait_ready(1s));
  EXPECT_EQ(get("k"), StoreStatus::kUnavailable);
}

TEST_F(StoreRedis, PendingCommandsAreBounded) {
  start_redis();
  StoreLimits limits;
  limits.redis_max_pending = 5;
  limits.redis_backoff_min = 50ms;
  store_ = make(url(), limits);
  ASSERT_TRUE(wait_ready(10s));
  int ok = 0;
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    store_->put(std::string("p").append(std::to_string(i)), "v", 60s,
                [&](StoreStatus s) { (s == StoreStatus::kOk ? ok : refused)++; });
  }
  EXPECT_EQ(refused, 3);  // refused at once, before the loop ran
  EXPECT_TRUE(run_until([&] { return ok == 5; }, 3s));
}

}  // namespace
}  // namespace mxscreen::proxy
