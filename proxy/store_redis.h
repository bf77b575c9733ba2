// proxy/store_redis.h: the redis engine (store.backend = "redis"): hiredis async on the loop,
// native TTLs, shared by several mxscreen hosts. While Redis is down, slow or the pending queue
// is full, every call answers kUnavailable at once (callers fail open); the outage is logged
// once and counted, and the engine reconnects by itself with back-off.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/store.h"
#include "proxy/uv_handle.h"

struct redisAsyncContext;
struct redisReply;
struct redisReader;

namespace mxscreen::proxy {

// redis://[[user]:password@]host[:port][/db]; host may be "[::1]"; %XX escapes in the
// password are decoded. Default port 6379, db 0.
struct RedisUrl {
  std::string host;
  uint16_t port = 6379;
  std::string username;  // Redis 6 ACL user; empty = "AUTH password"
  std::string password;  // empty = no AUTH
  int db = 0;

  static std::optional<RedisUrl> parse(std::string_view url, std::string* error);
  std::string endpoint() const;  // "127.0.0.1:6379" / "[::1]:6379", for log lines
};

class RedisStore : public Store {
 public:
  // Starts connecting at once; a Redis that is down is not an error here.
  static std::unique_ptr<RedisStore> create(uv_loop_t* loop, const std::string& url,
                                            const StoreLimits& limits, std::string* error);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  void get(const std::string& key, GetCallback cb) override;
  void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
           StatusCallback cb = {}) override;
  void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                 IncrementCallback cb = {}) override;
  void put_if(const std::string& key, const std::optional<std::string>& expected,
              const std::string& value, std::chrono::seconds ttl, StatusCallback cb = {}) override;
  void remove(const std::string& key, StatusCallback cb = {}) override;
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override;
  std::string_view engine() const override { return "redis"; }

  // Connected, authenticated and the database selected.
  bool ready() const { return state_ == State::kReady; }
  std::size_t pending() const { return pending_.size(); }

 private:
  enum class State : uint8_t { kDown, kConnecting, kReady };
  // Gets the reply, or nullptr when the command failed (connection lost or timed out).
  using ReplyHandler = std::function<void(redisReply*)>;
  struct Pending {
    uint64_t started_ms;
    ReplyHandler handler;
  };

  RedisStore(uv_loop_t* loop, RedisUrl url, const StoreLimits& limits);
  void connect();
  // The connection is gone or unusable: log once per outage, schedule a reconnect.
  void lost(const std::string& reason);
  // Drops the connection now; pending commands answer kUnavailable.
  void drop(const std::string& reason);
  void on_handshake_reply(redisReply* reply, bool last);
  // Sends a command if the engine is ready (or `handshake`); false when it was not sent.
  bool send(std::string_view op, std::initializer_list<std::string_view> args, ReplyHandler handler,
            bool handshake = false);
  void reply_error(std::string_view op, redisReply* reply);
  struct PageWalk;
  void page_step(const std::shared_ptr<PageWalk>& walk, const std::string& cursor);
  void page_fetch(const std::shared_ptr<PageWalk>& walk, std::vector<std::string> keys,
                  const std::string& next);
  void page_stepped(const std::shared_ptr<PageWalk>& walk, const std::string& next);

  // Reads what the server sent; drops the connection on a reply no command waits for.
  void on_readable(redisAsyncContext* ac);
  static void on_poll(uv_poll_t* handle, int status, int events);
  // The libuv adapter's add/del read/write hooks, with on_poll as the poll callback.
  static void set_interest(void* events_data, int flag, bool on);

  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  void on_tick();
  void on_reconnect_timer();

  uv_loop_t* loop_;
  RedisUrl url_;
  StoreLimits limits_;
  redisAsyncContext* ctx_ = nullptr;
  redisReader* shadow_ = nullptr;  // fed what hiredis's reader is fed, to count whole replies
  State state_ = State::kDown;
  uint64_t connect_started_ms_ = 0;
  std::map<uint64_t, Pending> pending_;  // by id: the first entry is the oldest
  uint64_t next_id_ = 1;
  Timer tick_timer_;       // command and connect timeouts
  Timer reconnect_timer_;  // back-off
  std::chrono::milliseconds backoff_;
  bool outage_logged_ = false;
  uint64_t outage_started_ms_ = 0;
  bool pending_full_logged_ = false;
  std::string last_error_logged_;
};

}  // namespace mxscreen::proxy
