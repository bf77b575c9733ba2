// proxy/store_redis.cc: see store_redis.h. hiredis 0.14 has no timeouts of its own in async
// mode, and its libuv adapter ignores poll errors (a refused connect can hang silently), so a
// loop timer bounds both the connect and every command: past StoreLimits::redis_timeout the
// connection is dropped, pending commands answer kUnavailable, and a reconnect is scheduled.
//
// hiredis 0.14 also assert()s, aborting the process, when a reply arrives that no command is
// waiting for (async.c, a "spontaneous" reply outside SUBSCRIBE/MONITOR): a broken or hostile
// server could stop mxscreen at will. So mxscreen reads the socket itself (the adapter's poll
// callback is replaced by on_poll), feeds the bytes to hiredis's reader and to a shadow reader,
// counts the whole replies, and drops the connection (fail open, reconnect) when there are more
// than commands waiting, before hiredis dispatches any of them.
#include "proxy/store_redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "protocol/escape.h"
#include "proxy/log.h"

// Exported by libhiredis 0.14 but declared only from 1.0 on: dispatches the whole replies in
// the context's reader to their callbacks (the second half of redisAsyncHandleRead).
extern "C" void redisProcessCallbacks(redisAsyncContext* ac);

namespace mxscreen::proxy {
namespace {

// INCRBY, and the TTL only when the key has none yet (it was just created).
constexpr std::string_view kIncrementScript =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) == -1 then "
    "redis.call('EXPIRE', KEYS[1], ARGV[2]) end "
    "return v";

// SET only when the value is ARGV[1]; ARGV[3] > 0 is the TTL in seconds. 1 = written.
constexpr std::string_view kCompareAndSetScript =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
    "else redis.call('SET', KEYS[1], ARGV[2]) end "
    "return 1";

template <typename T>
bool parse_number(std::string_view text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::optional<RedisUrl> RedisUrl::parse(std::string_view url, std::string* error) {
  constexpr std::string_view kScheme = "redis://";
  RedisUrl out;
  auto bad = [&](std::string_view message) -> std::optional<RedisUrl> {
    if (error) *error = "redis_url \"" + std::string(url) + "\": " + std::string(message);
    return std::nullopt;
  };
  if (url.substr(0, kScheme.size()) != kScheme) return bad("must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_number(db, out.db) || out.db < 0)) return bad("bad database number");
  }
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    auto user = protocol::percent_decode(userinfo.substr(0, colon));
    auto password = protocol::percent_decode(
        colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1));
    if (!user || !password) return bad("bad %-escape in the password");
    if (colon != std::string_view::npos) out.username = *user;
    out.password = *password;
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [ipv6] host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("garbage after ]");
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  if (!port.empty() && (!parse_number(port, out.port) || out.port == 0)) return bad("bad port");
  out.host = host;
  return out;
}

std::string RedisUrl::endpoint() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::unique_ptr<RedisStore> RedisStore::create(uv_loop_t* loop, const std::string& url,
                                               const StoreLimits& limits, std::string* error) {
  auto parsed = RedisUrl::parse(url, error);
  if (!parsed) return nullptr;
  std::unique_ptr<RedisStore> store(new RedisStore(loop, std::move(*parsed), limits));
  store->connect();
  return store;
}

RedisStore::RedisStore(uv_loop_t* loop, RedisUrl url, const StoreLimits& limits)
    : loop_(loop), url_(std::move(url)), limits_(limits), backoff_(limits.redis_backoff_min) {
  // Timers alone do not keep the loop running.
  tick_timer_.init<&RedisStore::on_tick>(loop_, this, false);
  reconnect_timer_.init<&RedisStore::on_reconnect_timer>(loop_, this, false);
  auto tick =
      std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10), limits_.redis_timeout / 4);
  tick_timer_.start(tick, tick);
}

RedisStore::~RedisStore() {
  // Pending callbacks are dropped, not called: their owners may be gone at shutdown.
  if (ctx_) {
    ctx_->data = nullptr;
    redisAsyncFree(ctx_);
    ctx_ = nullptr;
  }
  if (shadow_) redisReaderFree(shadow_);
}

void RedisStore::connect() {
  state_ = State::kConnecting;
  connect_started_ms_ = uv_now(loop_);
  // hiredis 0.14 resolves the host name synchronously: configure an address, not a name.
  redisAsyncContext* ac = redisAsyncConnect(url_.host.c_str(), url_.port);
  if (!ac) return lost("out of memory");
  if (ac->err) {
    std::string reason = ac->errstr ? ac->errstr : "connect failed";
    redisAsyncFree(ac);
    return lost(reason);
  }
  ac->data = this;
  if (redisLibuvAttach(ac, loop_) != REDIS_OK) {
    ac->data = nullptr;
    redisAsyncFree(ac);
    return lost("cannot attach to the event loop");
  }
  // The adapter's event hooks as it writes them, but starting our poll callback, not its own.
  ac->ev.addRead = [](void* data) { set_interest(data, UV_READABLE, true); };
  ac->ev.delRead = [](void* data) { set_interest(data, UV_READABLE, false); };
  ac->ev.addWrite = [](void* data) { set_interest(data, UV_WRITABLE, true); };
  ac->ev.delWrite = [](void* data) { set_interest(data, UV_WRITABLE, false); };
  if (shadow_) redisReaderFree(shadow_);
  shadow_ = redisReaderCreate();
  if (!shadow_) {
    ac->data = nullptr;
    redisAsyncFree(ac);
    return lost("out of memory");
  }
  redisAsyncSetConnectCallback(ac, &RedisStore::on_connect);
  redisAsyncSetDisconnectCallback(ac, &RedisStore::on_disconnect);
  ctx_ = ac;
  // Queued now, written once connected; the PING's answer makes the engine ready.
  auto handshake = [this](bool last) {
    return [this, last](redisReply* reply) { on_handshake_reply(reply, last); };
  };
  if (!url_.password.empty()) {
    if (url_.username.empty()) {
      send("auth", {"AUTH", url_.password}, handshake(false), true);
    } else {
      send("auth", {"AUTH", url_.username, url_.password}, handshake(false), true);
    }
  }
  std::string db = std::to_string(url_.db);
  if (url_.db != 0) send("select", {"SELECT", db}, handshake(false), true);
  send("ping", {"PING"}, handshake(true), true);
}

void RedisStore::on_handshake_reply(redisReply* reply, bool last) {
  if (!reply) return;  // the connection failed; on_connect/on_disconnect/drop deal with it
  if (reply->type == REDIS_REPLY_ERROR) {
    return drop("handshake refused: " + std::string(reply->str, reply->len));
  }
  if (!last || state_ != State::kConnecting) return;
  state_ = State::kReady;
  backoff_ = limits_.redis_backoff_min;
  pending_full_logged_ = false;
  if (outage_logged_) {
    uint64_t ms = uv_now(loop_) - outage_started_ms_;
    Log::info("redis " + url_.endpoint() + " reachable again after " + std::to_string(ms / 1000) +
              "." + std::to_string(ms % 1000 / 100) + "s; store back in service");
  } else {
    Log::info("redis " + url_.endpoint() + " connected, db " + std::to_string(url_.db));
  }
  outage_logged_ = false;
}

void RedisStore::lost(const std::string& reason) {
  state_ = State::kDown;
  count_store_error(engine(), "connection");
  if (!outage_logged_) {
    Log::warning("redis " + url_.endpoint() + " unreachable: " + reason + "; failing open");
    outage_logged_ = true;
    outage_started_ms_ = uv_now(loop_);
  }
  if (!reconnect_timer_.active()) {
    reconnect_timer_.start(backoff_);
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, limits_.redis_backoff_max);
  }
}

void RedisStore::drop(const std::string& reason) {
  redisAsyncContext* ac = ctx_;
  ctx_ = nullptr;
  lost(reason);  // first, so that callbacks run by the free below see the engine down
  // Answers every pending command with a NULL reply (deferred by hiredis when called from
  // inside one of its callbacks).
  if (ac) redisAsyncFree(ac);
}

void RedisStore::set_interest(void* events_data, int flag, bool on) {
  auto* events = static_cast<redisLibuvEvents*>(events_data);
  events->events = on ? events->events | flag : events->events & ~flag;
  if (events->events) {
    uv_poll_start(&events->handle, events->events, &RedisStore::on_poll);
  } else {
    uv_poll_stop(&events->handle);
  }
}

void RedisStore::on_poll(uv_poll_t* handle, int status, int events_ready) {
  auto* events = static_cast<redisLibuvEvents*>(handle->data);
  if (status != 0 || !events->context) return;
  redisAsyncContext* ac = events->context;
  if (events_ready & UV_READABLE) {
    // Not yet connected: the write handler finishes the connect (and sends the handshake).
    if (!(ac->c.flags & REDIS_CONNECTED)) redisAsyncHandleWrite(ac);
    ac = events->context;  // NULL once hiredis has freed the context
    if (ac) {
      auto* self = static_cast<RedisStore*>(ac->data);
      if (self) {
        self->on_readable(ac);
      } else {
        redisAsyncHandleRead(ac);
      }
    }
  }
  if (events->context && (events_ready & UV_WRITABLE)) redisAsyncHandleWrite(events->context);
}

void RedisStore::on_readable(redisAsyncContext* ac) {
  if (!(ac->c.flags & REDIS_CONNECTED)) return;
  char buf[16 * 1024];
  ssize_t n = read(ac->c.fd, buf, sizeof buf);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return drop(std::strerror(errno));
  }
  if (n == 0) return drop("connection closed by the server");
  auto size = static_cast<size_t>(n);
  if (redisReaderFeed(ac->c.reader, buf, size) != REDIS_OK ||
      redisReaderFeed(shadow_, buf, size) != REDIS_OK) {
    return drop("out of memory");
  }
  size_t waiting = 0;
  for (const redisCallback* cb = ac->replies.head; cb; cb = cb->next) ++waiting;
  for (size_t whole = 0;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(shadow_, &reply) != REDIS_OK) {
      count_store_error(engine(), "protocol");
      return drop("protocol error: " + std::string(shadow_->errstr));
    }
    if (!reply) break;
    freeReplyObject(reply);
    if (++whole > waiting) {
      count_store_error(engine(), "protocol");
      return drop("a reply no command was waiting for (" + std::to_string(waiting) +
                  " waiting): not a Redis server, or a broken one");
    }
  }
  redisProcessCallbacks(ac);  // hiredis's reader holds exactly the replies counted above
}

void RedisStore::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisStore*>(ac->data);
  if (!self || status == REDIS_OK || self->ctx_ != ac) return;
  self->ctx_ = nullptr;  // hiredis frees the context after this callback
  self->lost(ac->c.errstr[0] ? ac->c.errstr : "connect failed");
}

void RedisStore::on_disconnect(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisStore*>(ac->data);
  if (!self || self->ctx_ != ac) return;
  self->ctx_ = nullptr;
  self->lost(ac->c.errstr[0] ? ac->c.errstr : "connection closed");
}

void RedisStore::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* self = static_cast<RedisStore*>(ac->data);
  if (!self) return;
  auto it = self->pending_.find(reinterpret_cast<uintptr_t>(privdata));
  if (it == self->pending_.end()) return;
  ReplyHandler handler = std::move(it->second.handler);
  self->pending_.erase(it);
  // A NULL reply: the connection is going away; later calls fail at once.
  if (!reply && self->state_ == State::kReady) self->state_ = State::kDown;
  handler(static_cast<redisReply*>(reply));
}

void RedisStore::on_tick() {
  uint64_t now = uv_now(loop_);
  auto limit = static_cast<uint64_t>(limits_.redis_timeout.count());
  if (state_ == State::kConnecting && ctx_) {
    // The libuv adapter drops poll errors, so a refused connect is found here, not there.
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(ctx_->c.fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error != 0) {
      return drop(std::strerror(error));
    }
  }
  if (state_ == State::kConnecting && now - connect_started_ms_ > limit) {
    drop("no connection within " + std::to_string(limit) + " ms");
  } else if (!pending_.empty() && now - pending_.begin()->second.started_ms > limit) {
    count_store_error(engine(), "timeout");
    drop("no reply within " + std::to_string(limit) + " ms");
  }
}

void RedisStore::on_reconnect_timer() {
  if (state_ == State::kDown && !ctx_) connect();
}

bool RedisStore::send(std::string_view op, std::initializer_list<std::string_view> args,
                      ReplyHandler handler, bool handshake) {
  if (!handshake) {
    count_store_operation(engine(), op);
    if (state_ != State::kReady || !ctx_) {
      count_store_error(engine(), "down");
      return false;
    }
    if (pending_.size() >= limits_.redis_max_pending) {
      count_store_error(engine(), "pending_full");
      if (!pending_full_logged_) {
        Log::warning("redis " + url_.endpoint() + " has " + std::to_string(pending_.size()) +
                     " commands in flight (limit " + std::to_string(limits_.redis_max_pending) +
                     "): new commands fail open");
        pending_full_logged_ = true;
      }
      return false;
    }
  }
  const char* argv[8];
  size_t lengths[8];
  int argc = 0;
  for (std::string_view arg : args) {
    argv[argc] = arg.data();
    lengths[argc++] = arg.size();
  }
  uint64_t id = next_id_++;
  pending_.emplace(id, Pending{uv_now(loop_), std::move(handler)});
  // privdata carries the command id, not a pointer: a late reply finds nothing to free.
  void* privdata = reinterpret_cast<void*>(id);  // NOLINT(performance-no-int-to-ptr)
  if (redisAsyncCommandArgv(ctx_, &RedisStore::on_reply, privdata, argc, argv, lengths) !=
      REDIS_OK) {
    pending_.erase(id);
    count_store_error(engine(), "error");
    return false;
  }
  return true;
}

void RedisStore::reply_error(std::string_view op, redisReply* reply) {
  count_store_error(engine(), "error");
  std::string text = reply->type == REDIS_REPLY_ERROR
                         ? std::string(reply->str, reply->len)
                         : "unexpected reply type " + std::to_string(reply->type);
  if (text != last_error_logged_) {
    Log::warning("redis " + url_.endpoint() + " " + std::string(op) + " failed: " + text +
                 "; failing open");
    last_error_logged_ = text;
  }
}

void RedisStore::get(const std::string& key, GetCallback cb) {
  bool sent = send("get", {"GET", key}, [this, cb](redisReply* reply) {
    if (!reply) {
      if (cb) cb(StoreStatus::kUnavailable, {});
    } else if (reply->type == REDIS_REPLY_STRING) {
      if (cb) cb(StoreStatus::kOk, std::string(reply->str, reply->len));
    } else if (reply->type == REDIS_REPLY_NIL) {
      if (cb) cb(StoreStatus::kNotFound, {});
    } else {
      reply_error("get", reply);
      if (cb) cb(StoreStatus::kUnavailable, {});
    }
  });
  if (!sent && cb) cb(StoreStatus::kUnavailable, {});
}

void RedisStore::put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
                     StatusCallback cb) {
  auto handler = [this, cb](redisReply* reply) {
    StoreStatus status = StoreStatus::kUnavailable;
    if (reply && reply->type == REDIS_REPLY_STATUS) {
      status = StoreStatus::kOk;
    } else if (reply) {
      reply_error("put", reply);
    }
    if (cb) cb(status);
  };
  std::string seconds = std::to_string(ttl.count());
  bool sent = ttl.count() > 0 ? send("put", {"SET", key, value, "EX", seconds}, handler)
                              : send("put", {"SET", key, value}, handler);
  if (!sent && cb) cb(StoreStatus::kUnavailable);
}

void RedisStore::increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                           IncrementCallback cb) {
  std::string amount = std::to_string(by);
  std::string seconds = std::to_string(std::max<int64_t>(ttl.count(), 0));
  bool sent = send("increment", {"EVAL", kIncrementScript, "1", key, amount, seconds},
                   [this, cb](redisReply* reply) {
                     if (reply && reply->type == REDIS_REPLY_INTEGER) {
                       if (cb) cb(StoreStatus::kOk, reply->integer);
                       return;
                     }
                     if (reply) reply_error("increment", reply);
                     if (cb) cb(StoreStatus::kUnavailable, 0);
                   });
  if (!sent && cb) cb(StoreStatus::kUnavailable, 0);
}

void RedisStore::put_if(const std::string& key, const std::optional<std::string>& expected,
                        const std::string& value, std::chrono::seconds ttl, StatusCallback cb) {
  // SET NX answers OK or nil; the script answers 1 or 0.
  auto handler = [this, cb](redisReply* reply) {
    StoreStatus status = StoreStatus::kUnavailable;
    if (reply && (reply->type == REDIS_REPLY_NIL ||
                  (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0))) {
      status = StoreStatus::kConflict;
    } else if (reply && (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_INTEGER)) {
      status = StoreStatus::kOk;
    } else if (reply) {
      reply_error("put_if", reply);
    }
    if (cb) cb(status);
  };
  std::string seconds = std::to_string(std::max<int64_t>(ttl.count(), 0));
  bool sent = false;
  if (!expected) {
    sent = ttl.count() > 0 ? send("put_if", {"SET", key, value, "NX", "EX", seconds}, handler)
                           : send("put_if", {"SET", key, value, "NX"}, handler);
  } else {
    sent = send("put_if", {"EVAL", kCompareAndSetScript, "1", key, *expected, value, seconds},
                handler);
  }
  if (!sent && cb) cb(StoreStatus::kUnavailable);
}

void RedisStore::remove(const std::string& key, StatusCallback cb) {
  bool sent = send("remove", {"DEL", key}, [this, cb](redisReply* reply) {
    StoreStatus status = StoreStatus::kUnavailable;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
      status = StoreStatus::kOk;
    } else if (reply) {
      reply_error("remove", reply);
    }
    if (cb) cb(status);
  });
  if (!sent && cb) cb(StoreStatus::kUnavailable);
}

namespace {

// A MATCH pattern for keys starting with `prefix`: glob characters are escaped.
std::string match_prefix(const std::string& prefix) {
  std::string pattern;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern += '\\';
    pattern += c;
  }
  return pattern + "*";
}

}  // namespace

struct RedisStore::PageWalk {
  std::string pattern;
  std::size_t max = 0;
  ScanFilter keep;
  PageCallback cb;
  ScanPage page;
  std::size_t examined = 0;  // SCAN's COUNT summed: the slots it was asked to look at
};

// SCAN steps (never KEYS, which blocks Redis for the whole key space), each followed by one GET
// per key it found (a key that expired in between is left out), until the page is full, has
// looked at limits_.scan_page_examined keys, or the walk is done. The cursor is SCAN's own.
void RedisStore::scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                           const ScanFilter& keep, PageCallback cb) {
  bool digits = !cursor.empty() && std::all_of(cursor.begin(), cursor.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
  if (!cursor.empty() && (!digits || cursor == "0")) {
    if (cb) cb(StoreStatus::kNotFound, {});  // "0" would start the walk over
    return;
  }
  auto walk = std::make_shared<PageWalk>();
  walk->pattern = match_prefix(prefix);
  walk->max = std::max<std::size_t>(max, 1);
  walk->keep = keep;
  walk->cb = std::move(cb);
  page_step(walk, cursor.empty() ? "0" : cursor);
}

void RedisStore::page_step(const std::shared_ptr<PageWalk>& walk, const std::string& cursor) {
  // COUNT follows the room left, so that a step rarely runs far past `max`.
  const std::size_t count = std::clamp<std::size_t>(walk->max - walk->page.items.size(), 10, 1000);
  walk->examined += count;
  std::string count_text = std::to_string(count);
  bool sent = send("scan", {"SCAN", cursor, "MATCH", walk->pattern, "COUNT", count_text},
                   [this, walk](redisReply* reply) {
                     if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                         reply->element[0]->type != REDIS_REPLY_STRING ||
                         reply->element[1]->type != REDIS_REPLY_ARRAY) {
                       if (reply) reply_error("scan", reply);
                       if (walk->cb) walk->cb(StoreStatus::kUnavailable, {});
                       return;
                     }
                     const redisReply* found = reply->element[1];
                     std::vector<std::string> keys;
                     for (std::size_t i = 0; i < found->elements; ++i) {
                       keys.emplace_back(found->element[i]->str, found->element[i]->len);
                     }
                     page_fetch(walk, std::move(keys),
                                std::string(reply->element[0]->str, reply->element[0]->len));
                   });
  if (!sent && walk->cb) walk->cb(StoreStatus::kUnavailable, {});
}

void RedisStore::page_fetch(const std::shared_ptr<PageWalk>& walk, std::vector<std::string> keys,
                            const std::string& next) {
  if (keys.empty()) return page_stepped(walk, next);
  struct Fetch {
    std::vector<std::optional<std::string>> values;
    std::size_t waiting = 0;
    bool failed = false;
  };
  auto fetch = std::make_shared<Fetch>();
  fetch->values.resize(keys.size());
  fetch->waiting = keys.size();
  auto shared_keys = std::make_shared<std::vector<std::string>>(std::move(keys));
  for (std::size_t i = 0; i < shared_keys->size(); ++i) {
    get((*shared_keys)[i],
        [this, walk, fetch, shared_keys, i, next](StoreStatus status, std::string value) {
          if (status == StoreStatus::kOk) fetch->values[i] = std::move(value);
          if (status == StoreStatus::kUnavailable) fetch->failed = true;
          if (--fetch->waiting > 0) return;
          if (fetch->failed) {
            if (walk->cb) walk->cb(StoreStatus::kUnavailable, {});
            return;
          }
          for (std::size_t j = 0; j < shared_keys->size(); ++j) {
            if (!fetch->values[j]) continue;
            const std::string& key = (*shared_keys)[j];
            if (walk->keep && !walk->keep(key, *fetch->values[j])) continue;
            walk->page.items.push_back({key, std::move(*fetch->values[j])});
          }
          page_stepped(walk, next);
        });
  }
}

void RedisStore::page_stepped(const std::shared_ptr<PageWalk>& walk, const std::string& next) {
  if (next != "0" && walk->page.items.size() < walk->max &&
      walk->examined < limits_.scan_page_examined) {
    return page_step(walk, next);
  }
  walk->page.next = next == "0" ? "" : next;
  if (walk->cb) walk->cb(StoreStatus::kOk, std::move(walk->page));
}

}  // namespace mxscreen::proxy
