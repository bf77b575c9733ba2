// proxy/metrics.h: counters and gauges in Prometheus text format (names prefixed mxscreen_),
// and the small HTTP endpoint that serves them at /metrics on metrics.listen. The registry is
// shared by the workers (server.workers) behind one mutex; the endpoint runs on the first
// worker's loop, and a scrape is one bounded request and one reply.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Metrics {
 public:
  // `labels` is the inside of the braces, e.g. `listener="127.0.0.1:25",outcome="handoff"`.
  void inc(std::string_view name, std::string_view labels = {}, uint64_t by = 1);
  void set(std::string_view name, std::string_view labels, int64_t value);
  void describe(std::string_view name, std::string_view type, std::string_view help);
  uint64_t value(std::string_view name, std::string_view labels = {}) const;
  // A latency sample in seconds for the histogram `name` (buckets 1 ms .. 10 s), or, with
  // `buckets` (upper bounds, ascending, static storage), a sample of another scale. One series
  // keeps the buckets of its first sample.
  void observe(std::string_view name, std::string_view labels, double seconds);
  void observe(std::string_view name, std::string_view labels, double value,
               std::span<const double> buckets);
  // How many samples the histogram series holds.
  uint64_t observations(std::string_view name, std::string_view labels = {}) const;
  std::string render() const;

  static constexpr std::array<double, 12> kLatencyBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                             0.25,  0.5,   1.0,  2.5,   5.0,  10.0};

 private:
  struct Family {
    std::string type = "counter";
    std::string help;
    std::map<std::string, int64_t, std::less<>> series;  // labels -> value
  };
  struct Histogram {
    std::span<const double> bounds;
    std::vector<uint64_t> buckets;  // cumulative, one per bound
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;  // every worker counts into the one registry
  std::map<std::string, Family, std::less<>> families_;
  // name -> labels -> histogram
  std::map<std::string, std::map<std::string, Histogram, std::less<>>, std::less<>> histograms_;
};

// The process-wide registry (safe from every worker thread).
Metrics& metrics();

// A label value for Prometheus: quotes, backslashes and newlines escaped.
std::string label_value(std::string_view text);

// The /metrics endpoint's own bounds (metrics.max_connections, metrics.timeout): a scrape is
// one request and one reply, so a connection that holds on is closed, and connections past the
// cap get a 503 at once, so that idle scrapers cannot eat the descriptors SMTP clients need.
// Both are counted in mxscreen_admin_connections_closed_total{socket="metrics"}.
class MetricsServer {
 public:
  struct Limits {
    std::size_t max_connections = 16;
    std::chrono::milliseconds timeout{5000};  // request in and reply out, from accept
  };

  explicit MetricsServer(uv_loop_t* loop);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens; returns 0 or a libuv error.
  int start(const protocol::Endpoint& at, const Limits& limits);
  void stop();
  std::size_t open_connections() const { return exchanges_.size(); }

  class Exchange;

 private:
  static void on_connection(uv_stream_t* server, int status);
  void finished(Exchange* exchange);

  uv_loop_t* loop_;
  Limits limits_;
  UvHandle<uv_tcp_t> listener_;
  std::vector<std::unique_ptr<Exchange>> exchanges_;
};

// Counts a side-door connection closed by its bound: socket "metrics" | "ctl", reason
// "max_connections" | "timeout".
void count_admin_close(std::string_view socket, std::string_view reason);

}  // namespace mxscreen::proxy
