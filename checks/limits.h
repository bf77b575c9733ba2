// checks/limits.h: per-client connection limits of the connect decision, as postscreen's
// postscreen_client_connection_count_limit and anvil's smtpd_client_connection_rate_limit:
// concurrent sessions per client address, and new sessions per client per minute. Time is
// passed in; the table is bounded and forgets clients that went quiet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "checks/finding.h"
#include "protocol/address.h"

namespace mxscreen::checks {

struct IpAddressHash {
  std::size_t operator()(const protocol::IpAddress& a) const noexcept;
};

// The 421 a client over its limits gets at connect, no CRLF.
std::string client_limit_reply(const protocol::IpAddress& client);

class ClientLimits {
 public:
  enum class Result { kOk, kTooManyConnections, kTooFast };

  // 0 = that limit is off. The rate window is anvil's: one minute.
  ClientLimits(int max_concurrent, int max_per_minute)
      : max_concurrent_(max_concurrent), max_per_minute_(max_per_minute) {}

  // A reload may change the limits; counts of live sessions are kept.
  void set_limits(int max_concurrent, int max_per_minute) {
    max_concurrent_ = max_concurrent;
    max_per_minute_ = max_per_minute;
  }

  // What on_connect() would answer now, counting nothing (`mxscreen ctl explain`).
  Result would_connect(const protocol::IpAddress& client, int64_t now_ms) const;
  // A new connection. When kOk it is counted and on_disconnect() must follow.
  Result on_connect(const protocol::IpAddress& client, int64_t now_ms);
  void on_disconnect(const protocol::IpAddress& client);

  int concurrent(const protocol::IpAddress& client) const;
  std::size_t tracked() const { return clients_.size(); }
  // Drops clients with no session and an expired rate window (called now and then).
  void sweep(int64_t now_ms);

  static constexpr int64_t kRateWindowMs = 60'000;

 private:
  struct Entry {
    int concurrent = 0;
    int64_t window_start = 0;
    int in_window = 0;
  };
  int max_concurrent_;
  int max_per_minute_;
  std::unordered_map<protocol::IpAddress, Entry, IpAddressHash> clients_;
};

// The connect decision's finding on a client's limits (`who` is "[ip]:port"): kOk passes; over
// a limit, the LIMIT line, mxscreen_limit_hits_total and client_limit_reply, then close.
Finding client_limit_finding(const protocol::IpAddress& client, std::string_view who,
                             ClientLimits::Result result, int count_limit, int rate_limit);
// Every session slot is taken (server.max_sessions, or fewer when the open files limit is
// lower: `open_files`): postscreen's 421 "All server ports are busy", then close.
Finding server_busy_finding(std::string_view who, bool open_files);

}  // namespace mxscreen::checks
