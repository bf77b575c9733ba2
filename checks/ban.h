// checks/ban.h: bans (DESIGN.md "Fake MX", issue 6): when a client is banned, for how long,
// and how a ban record reads. A ban follows a client that only ever comes to the fake MX
// (fake_mx.ban_after hits in fake_mx.window, never on a real MX listener), or max_retry strikes
// (drop verdicts, the hard error limit, AUTH on an MX port) within find_time. Each repeat
// doubles the ban, up to max_ban_time (fail2ban's bantime.increment). Time is passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "checks/finding.h"
#include "protocol/address.h"

namespace mxscreen::checks {

struct BanPolicy {
  std::chrono::seconds ban_time{3600};
  std::chrono::seconds max_ban_time{7 * 24 * 3600};
  int max_retry = 3;
  std::chrono::seconds find_time{600};
};

// The length of the next ban for a client banned `previous_bans` times before.
std::chrono::seconds ban_duration(int64_t previous_bans, const BanPolicy& policy);

// The nolisting verdict: a client seen `fake_mx_hits` times on the fake MX in the window and
// never on a real MX listener.
bool fake_mx_ban_due(int64_t fake_mx_hits, bool seen_on_mx, int ban_after);

struct BanRecord {
  int64_t until = 0;  // epoch seconds
  std::string reason;

  std::string to_string() const;  // "until:reason"
  static std::optional<BanRecord> parse(std::string_view text);
};

// The reply a banned client gets at connect when ban.reply is on, no CRLF.
std::string ban_reply(const protocol::IpAddress& client);

// The client is banned now according to the stored record.
bool is_banned(std::optional<std::string_view> record, int64_t now_seconds);

// A banned client at connect (`who` is "[ip]:port", `record` the stored ban, `now` epoch
// seconds): the BANNED line, mxscreen_banned_connections_total, then ban_reply and close, or
// (ban.reply = false) a close without a byte read or written.
Finding banned_finding(const protocol::IpAddress& client, std::string_view who,
                       const std::optional<BanRecord>& record, int64_t now, bool reply);

}  // namespace mxscreen::checks
