// proxy/ctl_check.cc: see ctl_check.h. Blocking sockets with timeouts: this runs in the
// `mxscreen ctl` client process, never on an event loop.
#include "proxy/ctl_check.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "protocol/proxy_header.h"
#include "proxy/smtp_probe.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {
namespace {

// Sum of every sample of `name` (any labels) in Prometheus text; nullopt when there is none.
std::optional<double> metric_sum(std::string_view text, std::string_view name) {
  std::optional<double> sum;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.size() <= name.size() || line.substr(0, name.size()) != name) continue;
    char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    auto space = line.rfind(' ');
    sum = sum.value_or(0) + std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return sum;
}

// zone="..." label values of `name` samples whose value is `value`.
std::vector<std::string> zones_with_value(std::string_view text, std::string_view name,
                                          double value) {
  std::vector<std::string> zones;
  const std::string prefix = std::string(name) + "{zone=\"";
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.rfind(prefix, 0) != 0) continue;
    auto close = line.find('"', prefix.size());
    auto space = line.rfind(' ');
    if (close == std::string_view::npos || space == std::string_view::npos) continue;
    if (std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr) == value) {
      zones.emplace_back(line.substr(prefix.size(), close - prefix.size()));
    }
  }
  return zones;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// Reads until `done(buffer)` or EOF/timeout/limit; the buffer is bounded by `limit`.
std::string read_until(int fd, size_t limit, bool (*done)(const std::string&)) {
  std::string buf;
  char chunk[4096];
  while (buf.size() < limit && !done(buf)) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return buf;
}

std::optional<std::string> fetch_metrics(const protocol::Endpoint& at, std::string* error) {
  int fd = open_tcp(at, 5, error);
  if (fd < 0) return std::nullopt;
  send_all(fd, "GET /metrics HTTP/1.0\r\nHost: mxscreen\r\nConnection: close\r\n\r\n");
  std::string response = read_until(fd, 16 << 20, [](const std::string&) { return false; });
  ::close(fd);
  auto body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") > 12 ||
      body == std::string::npos) {
    *error = response.empty() ? "no answer" : "unexpected answer";
    return std::nullopt;
  }
  return response.substr(body + 4);
}

// Begins a handoff: the PROXY header where the backend expects one, then the backend's 220;
// QUIT. Empty: healthy.
std::optional<std::string> probe_backend(const Config& config) {
  std::string error;
  const auto& at = config.backend.address;
  int fd = open_tcp(at, 5, &error);
  if (fd < 0) return "backend " + at.to_string() + " unreachable: " + error;
  // As the EHLO probe (backend_probe.cc): the header names the backend as both ends (Postfix
  // refuses v1's "PROXY UNKNOWN").
  if (config.backend.handoff == HandoffMode::kProxyV1) {
    send_all(fd, protocol::encode_proxy_v1(at, at));
  } else if (config.backend.handoff == HandoffMode::kProxyV2) {
    send_all(fd, protocol::encode_proxy_v2(at, at));
  }
  std::string banner = read_until(fd, 4096, [](const std::string& b) {
    auto eol = b.find("\r\n");
    return eol != std::string::npos && b.size() > 3 && b[3] == ' ';
  });
  send_all(fd, "QUIT\r\n");
  ::close(fd);
  if (banner.rfind("220 ", 0) == 0) return std::nullopt;
  auto eol = banner.find_first_of("\r\n");
  return "backend " + at.to_string() + " did not greet with 220" +
         (banner.empty() ? std::string(" (no answer in 5 s)")
                         : ": " + banner.substr(0, std::min<size_t>(eol, 80)));
}

}  // namespace

CheckResult evaluate_check(const CheckInput& in, const CheckThresholds& t) {
  CheckResult r;
  auto sessions = metric_sum(in.metrics, "mxscreen_sessions_active");
  if (!sessions) {
    r.line = "MXSCREEN UNKNOWN - no mxscreen_sessions_active in the metrics";
    return r;
  }
  double backend = metric_sum(in.metrics, "mxscreen_sessions_backend").value_or(0);
  double queue = metric_sum(in.metrics, "mxscreen_backend_queue_depth").value_or(0);
  double stress = metric_sum(in.metrics, "mxscreen_stress_mode").value_or(0);
  double store_errors = metric_sum(in.metrics, "mxscreen_store_errors_total").value_or(0);
  auto bad_zones = zones_with_value(in.metrics, "mxscreen_dnsbl_zone_healthy", 0);

  std::vector<std::string> problems;
  auto raise = [&](CheckStatus s, std::string what) {
    r.status = static_cast<CheckStatus>(std::max(static_cast<int>(r.status), static_cast<int>(s)));
    problems.push_back(std::move(what));
  };
  r.status = CheckStatus::kOk;
  if (in.backend_error) raise(CheckStatus::kCritical, *in.backend_error);
  const double max = static_cast<double>(in.max_sessions);
  const double warn_s = std::floor(t.warn_sessions * max),
               crit_s = std::floor(t.crit_sessions * max);
  if (max > 0 && *sessions >= crit_s) {
    raise(CheckStatus::kCritical, number(*sessions) + " sessions >= " + number(crit_s));
  } else if (max > 0 && *sessions >= warn_s) {
    raise(CheckStatus::kWarning, number(*sessions) + " sessions >= " + number(warn_s));
  }
  const double qmax = static_cast<double>(in.queue_max);
  const double warn_q = std::ceil(t.warn_queue * qmax), crit_q = std::ceil(t.crit_queue * qmax);
  if (qmax > 0 && queue >= crit_q) {
    raise(CheckStatus::kCritical, number(queue) + " waiting for the backend >= " + number(crit_q));
  } else if (qmax > 0 && queue >= warn_q && queue > 0) {
    raise(CheckStatus::kWarning, number(queue) + " waiting for the backend >= " + number(warn_q));
  }
  if (stress > 0) raise(CheckStatus::kWarning, "stress mode");
  for (const auto& zone : bad_zones) {
    raise(CheckStatus::kWarning, "DNSBL zone " + zone + " answers with error codes");
  }

  static const char* const kWords[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
  std::string text;
  for (const auto& p : problems) text += (text.empty() ? "" : ", ") + p;
  if (text.empty()) {
    text = number(*sessions) + " sessions, " + number(backend) + " at the backend, " +
           number(queue) + " queued";
  }
  r.line = std::string("MXSCREEN ") + kWords[static_cast<int>(r.status)] + " - " + text +
           " | sessions=" + number(*sessions) + ";" + number(warn_s) + ";" + number(crit_s) +
           ";0;" + number(max) + " backend_sessions=" + number(backend) +
           " queue=" + number(queue) + ";" + number(warn_q) + ";" + number(crit_q) + ";0;" +
           number(qmax) + " stress=" + number(stress) + " store_errors=" + number(store_errors) +
           "c dnsbl_zones_unhealthy=" + std::to_string(bad_zones.size());
  return r;
}

bool parse_check_args(const std::vector<std::string>& args, CheckThresholds* t,
                      std::string* error) {
  const std::map<std::string, double*> keys = {{"--warn-sessions", &t->warn_sessions},
                                               {"--crit-sessions", &t->crit_sessions},
                                               {"--warn-queue", &t->warn_queue},
                                               {"--crit-queue", &t->crit_queue}};
  for (size_t i = 0; i < args.size(); ++i) {
    auto it = keys.find(args[i]);
    if (it == keys.end() || i + 1 == args.size()) {
      *error = "unknown or incomplete option '" + args[i] +
               "' (expected --warn-sessions, --crit-sessions, --warn-queue, --crit-queue, each "
               "with a share from 0 to 1)";
      return false;
    }
    char* end = nullptr;
    double v = std::strtod(args[i + 1].c_str(), &end);
    if (end == args[i + 1].c_str() || *end != '\0' || v < 0 || v > 1) {
      *error = args[i] + " takes a share from 0 to 1, not '" + args[i + 1] + "'";
      return false;
    }
    *it->second = v;
    ++i;
  }
  return true;
}

int run_ctl_check(const Config& config, const std::vector<std::string>& args) {
  CheckThresholds thresholds;
  std::string error;
  if (!parse_check_args(args, &thresholds, &error)) {
    std::printf("MXSCREEN UNKNOWN - %s\n", error.c_str());
    return static_cast<int>(CheckStatus::kUnknown);
  }
  if (!config.metrics.listen) {
    std::printf("MXSCREEN UNKNOWN - metrics.listen is off: nothing to read\n");
    return static_cast<int>(CheckStatus::kUnknown);
  }
  auto metrics = fetch_metrics(*config.metrics.listen, &error);
  if (!metrics) {
    std::printf("MXSCREEN CRITICAL - no metrics from %s: %s (is mxscreen running?)\n",
                config.metrics.listen->to_string().c_str(), error.c_str());
    return static_cast<int>(CheckStatus::kCritical);
  }
  CheckInput input{*metrics, probe_backend(config), config.server.max_sessions,
                   config.backend.queue_max};
  auto result = evaluate_check(input, thresholds);
  std::printf("%s\n", result.line.c_str());
  return static_cast<int>(result.status);
}

}  // namespace mxscreen::proxy
