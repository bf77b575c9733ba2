// checks/greylist_admin.cc: see greylist_admin.h.
#include "checks/greylist_admin.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "checks/store_keys.h"

namespace mxscreen::checks {
namespace {

// The filter's form of one address: "@domain" stays a domain, "<>" is the null sender.
std::string filter_part(const std::string& text, bool sender, const GreylistPolicy& policy) {
  if (text == "<>") return "";
  return sender ? greylist_key_sender(text, policy) : greylist_key_recipient(text);
}

bool part_matches(const std::optional<std::string>& want, const std::string& part) {
  if (!want) return true;
  if (!want->empty() && want->front() == '@') return part.ends_with(*want);
  return part == *want;
}

}  // namespace

std::optional<GreylistTriplet> parse_greylist_key(std::string_view key) {
  if (!key.starts_with(store_keys::kGreylist)) return std::nullopt;
  key.remove_prefix(store_keys::kGreylist.size());
  // The escaped addresses hold no ':' (an IPv6 network does): split from the right.
  std::size_t rcpt_colon = key.rfind(':');
  if (rcpt_colon == std::string_view::npos || rcpt_colon == 0) return std::nullopt;
  std::size_t sender_colon = key.rfind(':', rcpt_colon - 1);
  if (sender_colon == std::string_view::npos) return std::nullopt;
  GreylistTriplet t;
  t.network = key.substr(0, sender_colon);
  t.sender = key.substr(sender_colon + 1, rcpt_colon - sender_colon - 1);
  t.recipient = key.substr(rcpt_colon + 1);
  // The client part is a network, or an identity of greylist_identity.h ("spf=example.org",
  // "ptr=example.net").
  bool identity = t.network.starts_with("spf=") || t.network.starts_with("ptr=");
  if ((t.network.find('/') == std::string::npos && !identity) || t.recipient.empty()) {
    return std::nullopt;
  }
  return t;
}

GreylistFilter make_greylist_filter(const std::optional<std::string>& sender,
                                    const std::optional<std::string>& recipient,
                                    const GreylistPolicy& policy) {
  GreylistFilter f;
  if (sender) f.sender = filter_part(*sender, true, policy);
  if (recipient) f.recipient = filter_part(*recipient, false, policy);
  return f;
}

bool greylist_filter_matches(const GreylistFilter& filter, const GreylistTriplet& triplet) {
  return part_matches(filter.sender, triplet.sender) &&
         part_matches(filter.recipient, triplet.recipient);
}

std::string_view to_string(TripletState state) {
  switch (state) {
    case TripletState::kPending:
      return "pending";
    case TripletState::kPassed:
      return "passed";
    case TripletState::kNeverRetried:
      return "never-retried";
  }
  return "pending";
}

TripletState triplet_state(const GreylistRecord& record, int64_t now,
                           const GreylistPolicy& policy) {
  if (record.passed) return TripletState::kPassed;
  if (now - record.first_seen > policy.retry_window.count()) return TripletState::kNeverRetried;
  return TripletState::kPending;
}

std::optional<NeverRetriedClaim> claim_never_retried(std::string_view stored, int64_t now,
                                                     const GreylistPolicy& policy) {
  auto record = GreylistRecord::parse(stored);
  if (!record || record->counted ||
      triplet_state(*record, now, policy) != TripletState::kNeverRetried) {
    return std::nullopt;
  }
  NeverRetriedClaim claim;
  claim.record = *record;
  claim.record.counted = true;
  claim.new_record = claim.record.to_string();
  // What the record had left: it lapses as it would have.
  int64_t expires =
      record->first_seen + policy.retry_window.count() + policy.unretried_keep.count();
  claim.ttl = std::chrono::seconds(std::max<int64_t>(expires - now, 1));
  return claim;
}

std::string admin_pass_record(std::optional<std::string_view> stored, int64_t now) {
  GreylistRecord record{now, now, true, false, false};
  if (stored) {
    if (auto old = GreylistRecord::parse(*stored); old && old->first_seen <= now) {
      record.first_seen = old->first_seen;
      record.fcrdns = old->fcrdns;
    }
  }
  return record.to_string();
}

std::string never_retried_report_key(bool fcrdns, std::string_view sender) {
  std::string key(store_keys::kNeverRetried);
  key += fcrdns ? "y:" : "n:";
  key += sender;
  return key;
}

std::vector<NeverRetriedSender> rank_never_retried(
    const std::vector<std::pair<std::string, std::string>>& counters, std::size_t limit) {
  std::map<std::string, NeverRetriedSender, std::less<>> by_sender;
  for (const auto& [key, value] : counters) {
    std::string_view k = key;
    if (!k.starts_with(store_keys::kNeverRetried)) continue;
    k.remove_prefix(store_keys::kNeverRetried.size());
    if (k.size() < 2 || (k[0] != 'y' && k[0] != 'n') || k[1] != ':') continue;
    bool fcrdns = k[0] == 'y';
    k.remove_prefix(2);
    int64_t count = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), count);
    if (ec != std::errc() || end != value.data() + value.size() || count <= 0) continue;
    auto& row = by_sender[std::string(k)];
    row.sender = k;
    row.total += count;
    if (fcrdns) row.fcrdns += count;
  }
  std::vector<NeverRetriedSender> rows;
  rows.reserve(by_sender.size());
  for (auto& [sender, row] : by_sender) rows.push_back(std::move(row));
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    if (a.total != b.total) return a.total > b.total;
    if (a.fcrdns != b.fcrdns) return a.fcrdns > b.fcrdns;
    return a.sender < b.sender;
  });
  if (rows.size() > limit) rows.resize(limit);
  return rows;
}

}  // namespace mxscreen::checks
