// proxy/dns_cache.cc: see dns_cache.h.
#include "proxy/dns_cache.h"

#include <algorithm>

namespace mxscreen::proxy {

std::string_view to_string(DnsType type) {
  switch (type) {
    case DnsType::kA:
      return "A";
    case DnsType::kAAAA:
      return "AAAA";
    case DnsType::kPTR:
      return "PTR";
    case DnsType::kMX:
      return "MX";
    case DnsType::kTXT:
      return "TXT";
  }
  return "?";
}

std::string_view to_string(DnsStatus status) {
  switch (status) {
    case DnsStatus::kOk:
      return "ok";
    case DnsStatus::kNxDomain:
      return "nxdomain";
    case DnsStatus::kNoData:
      return "nodata";
    case DnsStatus::kTempFail:
      return "tempfail";
  }
  return "?";
}

std::string DnsCache::key(DnsType type, std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string key(to_string(type));
  key += ' ';
  for (char c : name) key += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return key;
}

std::chrono::seconds DnsCache::lifetime(const DnsAnswer& answer) const {
  std::chrono::seconds ttl =
      answer.status == DnsStatus::kOk ? std::chrono::seconds(answer.ttl) : limits_.negative_ttl;
  return std::clamp(ttl, limits_.ttl_min, std::max(limits_.ttl_min, limits_.ttl_max));
}

std::optional<DnsAnswer> DnsCache::get(DnsType type, std::string_view name, Clock::time_point now) {
  auto it = index_.find(key(type, name));
  if (it == index_.end()) return std::nullopt;
  auto entry = it->second;
  if (entry->expires <= now) {
    index_.erase(it);
    lru_.erase(entry);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, entry);
  DnsAnswer answer = entry->answer;
  auto left = std::chrono::ceil<std::chrono::seconds>(entry->expires - now);
  answer.ttl = static_cast<uint32_t>(std::max<int64_t>(1, left.count()));
  return answer;
}

void DnsCache::put(DnsType type, std::string_view name, const DnsAnswer& answer,
                   Clock::time_point now) {
  if (answer.status == DnsStatus::kTempFail || limits_.max_entries == 0) return;
  std::string k = key(type, name);
  Clock::time_point expires = now + lifetime(answer);
  auto it = index_.find(k);
  if (it != index_.end()) {
    it->second->answer = answer;
    it->second->expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (index_.size() >= limits_.max_entries) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Entry{std::move(k), answer, expires});
  index_.emplace(lru_.front().key, lru_.begin());
}

}  // namespace mxscreen::proxy
