// checks/limits.cc: see limits.h.
#include "checks/limits.h"

#include "checks/replies.h"

namespace mxscreen::checks {

std::size_t IpAddressHash::operator()(const protocol::IpAddress& a) const noexcept {
  // FNV-1a over family and bytes.
  std::size_t h = 1469598103934665603ull ^ static_cast<std::size_t>(a.family);
  for (auto b : a.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

std::string client_limit_reply(const protocol::IpAddress& client) {
  return "421 4.7.0 Error: too many connections from [" + client.to_string() + "]";
}

ClientLimits::Result ClientLimits::would_connect(const protocol::IpAddress& client,
                                                 int64_t now_ms) const {
  auto it = clients_.find(client);
  if (it == clients_.end()) return Result::kOk;
  const Entry& e = it->second;
  if (max_concurrent_ > 0 && e.concurrent >= max_concurrent_) return Result::kTooManyConnections;
  if (max_per_minute_ > 0 && now_ms - e.window_start < kRateWindowMs &&
      e.in_window >= max_per_minute_) {
    return Result::kTooFast;
  }
  return Result::kOk;
}

ClientLimits::Result ClientLimits::on_connect(const protocol::IpAddress& client, int64_t now_ms) {
  Entry& e = clients_[client];
  if (max_concurrent_ > 0 && e.concurrent >= max_concurrent_) return Result::kTooManyConnections;
  if (max_per_minute_ > 0) {
    if (now_ms - e.window_start >= kRateWindowMs) {
      e.window_start = now_ms;
      e.in_window = 0;
    }
    if (e.in_window >= max_per_minute_) return Result::kTooFast;
    ++e.in_window;
  }
  ++e.concurrent;
  return Result::kOk;
}

void ClientLimits::on_disconnect(const protocol::IpAddress& client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  if (--it->second.concurrent <= 0 && max_per_minute_ == 0) clients_.erase(it);
}

int ClientLimits::concurrent(const protocol::IpAddress& client) const {
  auto it = clients_.find(client);
  return it == clients_.end() ? 0 : it->second.concurrent;
}

void ClientLimits::sweep(int64_t now_ms) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    bool idle = it->second.concurrent <= 0 && now_ms - it->second.window_start >= kRateWindowMs;
    it = idle ? clients_.erase(it) : std::next(it);
  }
}

Finding client_limit_finding(const protocol::IpAddress& client, std::string_view who,
                             ClientLimits::Result result, int count_limit, int rate_limit) {
  Finding f;
  f.test = "client_limit";
  if (result == ClientLimits::Result::kOk) {
    f.outcome = "pass";
    return f;
  }
  bool count = result == ClientLimits::Result::kTooManyConnections;
  std::string what = count ? "too many connections (limits.client_connection_count = " +
                                 std::to_string(count_limit) + ")"
                           : "too many connections per minute (limits.client_connection_rate = " +
                                 std::to_string(rate_limit) + ")";
  f.outcome = "reject";
  f.word = "LIMIT";
  f.detail = "NOQUEUE: reject: CONNECT from ";
  f.detail.append(who).append(": ").append(what);
  f.counter = "mxscreen_limit_hits_total";
  f.labels = count ? "limit=\"client_connection_count\"" : "limit=\"client_connection_rate\"";
  return f.closes(Finding::Then::kReplyAndClose, client_limit_reply(client));
}

Finding server_busy_finding(std::string_view who, bool open_files) {
  Finding f;
  f.test = "busy";
  f.outcome = "reject";
  f.word = "NOQUEUE";
  f.warning = true;
  f.detail = "NOQUEUE: reject: CONNECT from ";
  f.detail.append(who).append(": all server ports busy");
  if (open_files) f.detail += " (open files limit)";
  f.counter = "mxscreen_limit_hits_total";
  f.labels = open_files ? "limit=\"open_files\"" : "limit=\"max_sessions\"";
  return f.closes(Finding::Then::kReplyAndClose, std::string(replies::kAllPortsBusy));
}

}  // namespace mxscreen::checks
