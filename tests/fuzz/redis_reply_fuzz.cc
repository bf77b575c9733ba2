// tests/fuzz/redis_reply_fuzz.cc: what a Redis server answers, as far as mxscreen reads it
// (proxy/store_redis over hiredis). A fake Redis on a loopback port of the fuzzer's own
// event loop answers each command the engine sends with the next fuzzer-chosen reply; the
// engine's get/put/increment/remove/scan must answer their callbacks, fail open on anything
// odd, and never crash. Values read back go through the record parsers, as the checks do.
#include <fuzzer/FuzzedDataProvider.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checks/ban.h"
#include "checks/greylist.h"
#include "proxy/log.h"
#include "proxy/store_redis.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen;
using proxy::StoreStatus;

namespace {

// The fake server's side of one connection: it reads the engine's commands (RESP arrays)
// and answers each with the next scripted reply.
struct FakeRedis {
  uv_loop_t* loop = nullptr;
  uv_tcp_t listener{};
  int port = 0;
  uv_tcp_t* client = nullptr;  // one connection at a time
  redisReader* commands = nullptr;
  std::vector<std::string> replies;  // scripted, in order
  size_t next = 0;
  bool pong = true;  // answer the handshake PING with +PONG (else with a scripted reply)
  int seen = 0;      // commands read on this connection
};

FakeRedis* g_fake = nullptr;

// Whether `bytes` is one or more whole RESP replies and nothing else. The fake sends them all:
// more replies than commands (which hiredis 0.14 alone would abort on) must make the engine
// drop the connection; a partial or broken reply is followed by EOF.
bool whole_replies(const std::string& bytes) {
  redisReader* r = redisReaderCreate();
  size_t end_of_last = 0;
  bool broken = false;
  for (size_t n = 0; n < bytes.size() && !broken; ++n) {
    void* reply = nullptr;
    redisReaderFeed(r, bytes.data() + n, 1);
    broken = redisReaderGetReply(r, &reply) != REDIS_OK;
    if (reply) {
      freeReplyObject(reply);
      end_of_last = n + 1;
    }
  }
  redisReaderFree(r);
  return !broken && end_of_last > 0 && end_of_last == bytes.size();
}

void close_client(FakeRedis* f) {
  if (!f->client) return;
  uv_close(reinterpret_cast<uv_handle_t*>(f->client),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  f->client = nullptr;
  if (f->commands) redisReaderFree(f->commands);
  f->commands = nullptr;
}

void send_bytes(FakeRedis* f, const std::string& bytes) {
  struct Write {
    uv_write_t req{};
    std::string data;
  };
  auto* w = new Write{};
  w->data = bytes;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(f->client), &buf, 1,
               [](uv_write_t* req, int) { delete reinterpret_cast<Write*>(req); }) != 0) {
    delete w;
  }
}

void on_command_bytes(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  std::unique_ptr<char[]> owned(buf->base);
  FakeRedis* f = g_fake;
  if (reinterpret_cast<uv_tcp_t*>(stream) != f->client) return;
  if (nread < 0) return close_client(f);
  redisReaderFeed(f->commands, buf->base, static_cast<size_t>(nread));
  void* command = nullptr;
  while (f->client && redisReaderGetReply(f->commands, &command) == REDIS_OK && command) {
    freeReplyObject(command);
    if (f->seen++ == 0 && f->pong) {
      send_bytes(f, "+PONG\r\n");
      continue;
    }
    if (f->next >= f->replies.size()) return close_client(f);  // script over: hang up
    const std::string& reply = f->replies[f->next++];
    send_bytes(f, reply);
    if (!whole_replies(reply)) close_client(f);  // a partial or broken reply, then EOF
  }
}

void on_connection(uv_stream_t* listener, int status) {
  FakeRedis* f = g_fake;
  if (status < 0) return;
  auto* c = new uv_tcp_t{};
  uv_tcp_init(f->loop, c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(c)) != 0 || f->client) {
    uv_close(reinterpret_cast<uv_handle_t*>(c),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    return;
  }
  f->client = c;
  f->commands = redisReaderCreate();
  f->seen = 0;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(c),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      on_command_bytes);
}

FakeRedis* fake() {
  if (g_fake) return g_fake;
  proxy::Log::configure(proxy::LogFormat::kText, proxy::LogTarget::kSyslog);  // quiet
  g_fake = new FakeRedis{};
  g_fake->loop = uv_default_loop();
  uv_tcp_init(g_fake->loop, &g_fake->listener);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&g_fake->listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  uv_listen(reinterpret_cast<uv_stream_t*>(&g_fake->listener), 16, on_connection);
  sockaddr_in bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&g_fake->listener, reinterpret_cast<sockaddr*>(&bound), &len);
  g_fake->port = ntohs(bound.sin_port);
  return g_fake;
}

// Runs the loop until `done` or a bound of loop turns (every wait is bounded by the engine's
// redis_timeout, so this ends).
template <typename Pred>
void run_until(uv_loop_t* loop, Pred done) {
  for (int turns = 0; !done() && turns < 200; ++turns) uv_run(loop, UV_RUN_ONCE);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeRedis* f = fake();
  FuzzedDataProvider in(data, size);
  f->pong = in.ConsumeBool();
  f->next = 0;
  f->replies.clear();
  const int ops = in.ConsumeIntegralInRange(1, 6);
  std::vector<uint8_t> kinds;
  for (int i = 0; i < ops; ++i) kinds.push_back(in.ConsumeIntegralInRange<uint8_t>(0, 4));
  while (in.remaining_bytes() > 0 && f->replies.size() < 16) {
    f->replies.push_back(in.ConsumeRandomLengthString(256));
  }

  proxy::StoreLimits limits;
  limits.redis_timeout = std::chrono::milliseconds(100);
  std::string error;
  auto store = proxy::RedisStore::create(
      f->loop, "redis://127.0.0.1:" + std::to_string(f->port) + "/0", limits, &error);
  FUZZ_CHECK(store != nullptr);
  run_until(f->loop, [&] { return store->ready() || (f->seen > 0 && !f->client); });

  for (uint8_t kind : kinds) {
    bool answered = false;
    const int64_t now = 1'700'000'000;
    switch (kind) {
      case 0:
        store->get("gl:192.0.2.0/24:a@b:c@d", [&](StoreStatus status, std::string value) {
          answered = true;
          if (status != StoreStatus::kOk) return;
          (void)checks::decide(value, now, checks::GreylistPolicy{});
          (void)checks::is_banned(value, now);
        });
        break;
      case 1:
        store->put("ban:192.0.2.7", "1700003600:fake_mx", std::chrono::seconds(3600),
                   [&](StoreStatus) { answered = true; });
        break;
      case 2:
        store->increment("fmx:192.0.2.7", 1, std::chrono::seconds(600),
                         [&](StoreStatus, int64_t) { answered = true; });
        break;
      case 3:
        store->remove("ban:192.0.2.7", [&](StoreStatus) { answered = true; });
        break;
      default:
        store->scan("ban:", 100, [&](StoreStatus status, std::vector<proxy::Store::Item> items) {
          answered = true;
          if (status != StoreStatus::kOk) return;
          for (const auto& item : items) (void)checks::BanRecord::parse(item.value);
        });
    }
    run_until(f->loop, [&] { return answered; });
    FUZZ_CHECK(answered);
  }
  store.reset();
  close_client(f);
  for (int i = 0; i < 4; ++i) uv_run(f->loop, UV_RUN_NOWAIT);
  return 0;
}
