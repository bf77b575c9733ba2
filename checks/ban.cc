// checks/ban.cc: see ban.h.
#include "checks/ban.h"

#include <charconv>

namespace mxscreen::checks {

std::chrono::seconds ban_duration(int64_t previous_bans, const BanPolicy& policy) {
  auto d = policy.ban_time;
  for (int64_t i = 0; i < previous_bans && d < policy.max_ban_time; ++i) d *= 2;
  return d < policy.max_ban_time ? d : policy.max_ban_time;
}

bool fake_mx_ban_due(int64_t fake_mx_hits, bool seen_on_mx, int ban_after) {
  return ban_after > 0 && !seen_on_mx && fake_mx_hits >= ban_after;
}

std::string BanRecord::to_string() const { return std::to_string(until) + ":" + reason; }

std::optional<BanRecord> BanRecord::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  BanRecord r;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + colon, r.until);
  if (ec != std::errc() || ptr != text.data() + colon) return std::nullopt;
  r.reason = std::string(text.substr(colon + 1));
  return r;
}

std::string ban_reply(const protocol::IpAddress& client) {
  return "554 5.7.1 Service unavailable; client [" + client.to_string() + "] is banned";
}

bool is_banned(std::optional<std::string_view> record, int64_t now_seconds) {
  if (!record) return false;
  auto r = BanRecord::parse(*record);
  return r && r->until > now_seconds;
}

Finding banned_finding(const protocol::IpAddress& client, std::string_view who,
                       const std::optional<BanRecord>& record, int64_t now, bool reply) {
  Finding f;
  f.test = "banned";
  f.outcome = "reject";
  f.word = "BANNED";
  f.detail.append("BANNED ")
      .append(who)
      .append(": connection refused (")
      .append(record ? record->reason : "")
      .append(", ")
      .append(std::to_string(record ? record->until - now : 0))
      .append("s left)");
  f.counter = "mxscreen_banned_connections_total";
  if (!reply) return f.closes(Finding::Then::kClose);
  return f.closes(Finding::Then::kReplyAndClose, ban_reply(client));
}

}  // namespace mxscreen::checks
