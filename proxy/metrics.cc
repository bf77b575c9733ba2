// proxy/metrics.cc: see metrics.h.
#include "proxy/metrics.h"

#include <algorithm>
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
  observe(name, labels, seconds, kLatencyBuckets);
}

void Metrics::observe(std::string_view name, std::string_view labels, double value,
                      std::span<const double> buckets) {
  std::lock_guard lock(mutex_);
  auto fam = histograms_.find(name);
  if (fam == histograms_.end())
    fam = histograms_.emplace(std::string(name), decltype(fam->second){}).first;
  auto it = fam->second.find(labels);
  if (it == fam->second.end()) {
    Histogram fresh;
    fresh.bounds = buckets;
    fresh.buckets.assign(buckets.size(), 0);
    it = fam->second.emplace(std::string(labels), std::move(fresh)).first;
  }
  Histogram& h = it->second;
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    if (value <= h.bounds[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += value;
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
      for (std::size_t i = 0; i < h.bounds.size(); ++i) {
        char le[32];
        std::snprintf(le, sizeof le, "%g", h.bounds[i]);
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

void count_admin_close(std::string_view socket, std::string_view reason) {
  metrics().inc("mxscreen_admin_connections_closed_total",
                "socket=\"" + std::string(socket) + "\",reason=\"" + std::string(reason) + "\"");
}

// One scrape: read the request head (bounded), answer, close once the answer is out. The timer
// bounds the whole exchange, so a scraper that sends nothing, or never reads the answer, is
// cut off at metrics.timeout.
class MetricsServer::Exchange : public ConnHandler {
 public:
  explicit Exchange(MetricsServer& server) : server_(server), conn_(*this) {}
  Conn& conn() { return conn_; }

  // Counted: read the request within the timeout.
  void begin() {
    timer_.init<&Exchange::timed_out>(server_.loop_, this);
    timer_.start(server_.limits_.timeout);
    conn_.start_reading();
  }

  void timed_out() {
    count_admin_close("metrics", "timeout");
    conn_.close();
    server_.finished(this);
  }

  void on_read(Conn&, std::string_view bytes) override {
    if (replied_) return;
    request_.append(bytes);
    if (request_.find("\r\n\r\n") == std::string::npos &&
        request_.find("\n\n") == std::string::npos) {
      if (request_.size() > kMaxRequest) reply("431 Request Header Fields Too Large", "");
      return;
    }
    bool get = request_.rfind("GET ", 0) == 0;
    std::string_view path(request_);
    path = path.substr(path.find(' ') + 1);
    path = path.substr(0, path.find(' '));
    if (get && (path == "/metrics" || path.rfind("/metrics?", 0) == 0)) {
      reply("200 OK", metrics().render());
    } else if (get && path == "/health") {
      reply("200 OK", "ok\n");
    } else {
      reply("404 Not Found", "see /metrics\n");
    }
  }
  void on_drained(Conn&) override {
    if (replied_) done();
  }
  void on_eof(Conn&) override {
    if (!replied_) done();
  }
  void on_error(Conn&, int) override { done(); }

  void reply(const std::string& status, const std::string& body) {
    replied_ = true;
    conn_.stop_reading();
    std::string text = "HTTP/1.0 " + status +
                       "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    if (!conn_.write(text)) return done();
    if (conn_.queued() == 0) done();  // else on_drained, or the timer
  }

 private:
  static constexpr std::size_t kMaxRequest = 8192;

  void done() {
    conn_.close_after_flush();
    server_.finished(this);
  }

  MetricsServer& server_;
  Conn conn_;
  Timer timer_;
  std::string request_;
  bool replied_ = false;
};

MetricsServer::MetricsServer(uv_loop_t* loop) : loop_(loop) {}

MetricsServer::~MetricsServer() { stop(); }

int MetricsServer::start(const protocol::Endpoint& at, const Limits& limits) {
  limits_ = limits;
  int rc = uv_tcp_init(loop_, listener_.get());
  if (rc != 0) return rc;
  listener_.initialized();
  listener_->data = this;
  auto ss = sockaddr_from_endpoint(at);
  rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&ss), 0);
  if (rc == 0) rc = uv_listen(listener_.stream(), 64, on_connection);
  return rc;
}

void MetricsServer::stop() {
  listener_.close();
  exchanges_.clear();  // each closes its connection and timer
}

void MetricsServer::finished(Exchange* exchange) {
  auto it = std::find_if(exchanges_.begin(), exchanges_.end(),
                         [exchange](const auto& e) { return e.get() == exchange; });
  if (it == exchanges_.end()) return;
  // Freed now, from inside its own callback: nothing there touches it after this call, and
  // its handles are closed through their wrappers (callbacks still queued find data == null).
  exchanges_.erase(it);
}

void MetricsServer::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<MetricsServer*>(server->data);
  if (!self || status < 0) return;
  auto ex = std::make_unique<Exchange>(*self);
  if (ex->conn().init(self->loop_) != 0 || uv_accept(server, ex->conn().stream()) != 0) return;
  if (self->exchanges_.size() >= self->limits_.max_connections) {
    // Refused at once: the descriptor is back before the next accept.
    count_admin_close("metrics", "max_connections");
    ex->conn().write(
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: "
        "22\r\nConnection: close\r\n\r\ntoo many connections\r\n");
    ex->conn().close_after_flush();
    return;
  }
  self->exchanges_.push_back(std::move(ex));
  self->exchanges_.back()->begin();
}

}  // namespace mxscreen::proxy
