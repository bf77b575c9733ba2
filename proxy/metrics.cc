// proxy/metrics.cc: see metrics.h.
#include "proxy/metrics.h"

#include <cstdio>

#include "proxy/conn.h"

namespace mxscreen::proxy {

Metrics& metrics() {
  static Metrics registry;
  return registry;
}

std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Metrics::inc(std::string_view name, std::string_view labels, uint64_t by) {
  std::lock_guard lock(mutex_);
  auto fam = families_.find(name);
  if (fam == families_.end()) fam = families_.emplace(std::string(name), Family{}).first;
  auto it = fam->second.series.find(labels);
  if (it == fam->second.series.end()) {
    fam->second.series.emplace(std::string(labels), static_cast<int64_t>(by));
  } else {
    it->second += static_cast<int64_t>(by);
  }
}

void Metrics::set(std::string_view name, std::string_view labels, int64_t value) {
  std::lock_guard lock(mutex_);
  auto fam = families_.find(name);
  if (fam == families_.end()) {
    fam = families_.emplace(std::string(name), Family{}).first;
    fam->second.type = "gauge";
  }
  fam->second.series[std::string(labels)] = value;
}

void Metrics::describe(std::string_view name, std::string_view type, std::string_view help) {
  std::lock_guard lock(mutex_);
  auto& fam = families_[std::string(name)];
  fam.type = type;
  fam.help = help;
}

uint64_t Metrics::value(std::string_view name, std::string_view labels) const {
  std::lock_guard lock(mutex_);
  auto fam = families_.find(name);
  if (fam == families_.end()) return 0;
  auto it = fam->second.series.find(labels);
  return it == fam->second.series.end() ? 0 : static_cast<uint64_t>(it->second);
}

void Metrics::observe(std::string_view name, std::string_view labels, double seconds) {
  std::lock_guard lock(mutex_);
  auto fam = histograms_.find(name);
  if (fam == histograms_.end())
    fam = histograms_.emplace(std::string(name), decltype(fam->second){}).first;
  auto it = fam->second.find(labels);
  if (it == fam->second.end()) it = fam->second.emplace(std::string(labels), Histogram{}).first;
  Histogram& h = it->second;
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

uint64_t Metrics::observations(std::string_view name, std::string_view labels) const {
  std::lock_guard lock(mutex_);
  auto fam = histograms_.find(name);
  if (fam == histograms_.end()) return 0;
  auto it = fam->second.find(labels);
  return it == fam->second.end() ? 0 : it->second.count;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    if (fam.type == "histogram") continue;  // described only; rendered with its samples below
    if (!fam.help.empty()) out += "# HELP " + name + " " + fam.help + "\n";
    out += "# TYPE " + name + " " + fam.type + "\n";
    for (const auto& [labels, value] : fam.series) {
      out += name;
      if (!labels.empty()) out += "{" + labels + "}";
      out += " " + std::to_string(value) + "\n";
    }
  }
  for (const auto& [name, fam] : families_) {  // described histograms without a sample yet
    if (fam.type != "histogram" || histograms_.count(name)) continue;
    if (!fam.help.empty()) out += "# HELP " + name + " " + fam.help + "\n";
    out += "# TYPE " + name + " histogram\n";
  }
  for (const auto& [name, series] : histograms_) {
    auto fam = families_.find(name);
    if (fam != families_.end() && !fam->second.help.empty()) {
      out += "# HELP " + name + " " + fam->second.help + "\n";
    }
    out += "# TYPE " + name + " histogram\n";
    for (const auto& [labels, h] : series) {
      const std::string prefix = labels.empty() ? "" : labels + ",";
      for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
        char le[32];
        std::snprintf(le, sizeof le, "%g", kLatencyBuckets[i]);
        out += name + "_bucket{" + prefix + "le=\"" + le + "\"} " + std::to_string(h.buckets[i]) +
               "\n";
      }
      out += name + "_bucket{" + prefix + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
      char sum[64];
      std::snprintf(sum, sizeof sum, "%.6f", h.sum);
      const std::string braces = labels.empty() ? "" : "{" + labels + "}";
      out += name + "_sum" + braces + " " + sum + "\n";
      out += name + "_count" + braces + " " + std::to_string(h.count) + "\n";
    }
  }
  return out;
}

namespace {

// One scrape: read the request head (bounded), answer, close.
class HttpExchange : public ConnHandler {
 public:
  explicit HttpExchange(uv_loop_t* loop) : conn_(loop, *this) {}
  Conn& conn() { return conn_; }

  void on_read(Conn&, std::string_view bytes) override {
    request_.append(bytes);
    if (request_.find("\r\n\r\n") == std::string::npos &&
        request_.find("\n\n") == std::string::npos) {
      if (request_.size() > kMaxRequest) finish("431 Request Header Fields Too Large", "");
      return;
    }
    bool get = request_.rfind("GET ", 0) == 0;
    std::string_view path(request_);
    path = path.substr(path.find(' ') + 1);
    path = path.substr(0, path.find(' '));
    if (get && (path == "/metrics" || path.rfind("/metrics?", 0) == 0)) {
      finish("200 OK", metrics().render());
    } else if (get && path == "/health") {
      finish("200 OK", "ok\n");
    } else {
      finish("404 Not Found", "see /metrics\n");
    }
  }
  void on_eof(Conn&) override { done(); }
  void on_error(Conn&, int) override { done(); }

 private:
  static constexpr std::size_t kMaxRequest = 8192;

  void finish(const std::string& status, const std::string& body) {
    std::string reply = "HTTP/1.0 " + status +
                        "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    conn_.write(reply);
    conn_.close_after_flush();
    done();
  }
  void done() { delete this; }  // the exchange owns itself; Conn's handle outlives it safely

  Conn conn_;
  std::string request_;
};

}  // namespace

int MetricsServer::start(const protocol::Endpoint& at) {
  int rc = uv_tcp_init(loop_, listener_.get());
  if (rc != 0) return rc;
  listener_.initialized();
  listener_->data = this;
  auto ss = sockaddr_from_endpoint(at);
  rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&ss), 0);
  if (rc == 0) rc = uv_listen(listener_.stream(), 64, on_connection);
  return rc;
}

void MetricsServer::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<MetricsServer*>(server->data);
  if (!self || status < 0) return;
  auto* ex = new HttpExchange(self->loop_);
  if (ex->conn().init() != 0 || uv_accept(server, ex->conn().stream()) != 0) {
    delete ex;
    return;
  }
  ex->conn().start_reading();
}

}  // namespace mxscreen::proxy
