// proxy/dns_cache.h: the DNS answer types and the cache in front of the resolver. The cache
// honours TTLs clamped to [ttl_min, ttl_max], keeps negative answers (NXDOMAIN, NODATA) for
// negative_ttl, never keeps a temporary failure, and holds at most max_entries (LRU out).
// It does no I/O and reads no clock: `now` comes from the caller, so tests use a fake clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mxscreen::proxy {

enum class DnsType : uint8_t { kA, kAAAA, kPTR, kMX, kTXT };
// kTempFail covers timeout, SERVFAIL, REFUSED and garbled replies.
enum class DnsStatus : uint8_t { kOk, kNxDomain, kNoData, kTempFail };

std::string_view to_string(DnsType type);
std::string_view to_string(DnsStatus status);

struct DnsAnswer {
  DnsStatus status = DnsStatus::kTempFail;
  // A/AAAA: addresses as text; PTR: names; MX: names sorted by preference; TXT: the strings.
  std::vector<std::string> values;
  uint32_t ttl = 0;  // seconds; from the cache: the time left
};

struct DnsCacheLimits {
  // postscreen_dnsbl_min_ttl / postscreen_dnsbl_max_ttl defaults.
  std::chrono::seconds ttl_min{60};
  std::chrono::seconds ttl_max{3600};
  // udns does not hand out the SOA minimum of a negative answer; this stands in for it
  // (still clamped to [ttl_min, ttl_max]).
  std::chrono::seconds negative_ttl{60};
  std::size_t max_entries = 50000;
};

class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit DnsCache(DnsCacheLimits limits) : limits_(limits) {}
  // The index holds views into the list's nodes: a move keeps them, a copy would not.
  DnsCache(const DnsCache&) = delete;
  DnsCache& operator=(const DnsCache&) = delete;
  DnsCache(DnsCache&&) = default;
  DnsCache& operator=(DnsCache&&) = default;

  // A fresh answer (ttl = seconds left, at least 1) or nullopt; a hit becomes most recent.
  std::optional<DnsAnswer> get(DnsType type, std::string_view name, Clock::time_point now);
  // Stores kOk, kNxDomain and kNoData; kTempFail is ignored. When full, the least recently
  // used entry goes (counted in evictions()).
  void put(DnsType type, std::string_view name, const DnsAnswer& answer, Clock::time_point now);

  std::size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }
  const DnsCacheLimits& limits() const { return limits_; }
  // The lifetime an answer gets in the cache, after clamping.
  std::chrono::seconds lifetime(const DnsAnswer& answer) const;

  // "A example.org" style key; the name is folded to lower case without a trailing dot.
  static std::string key(DnsType type, std::string_view name);

 private:
  struct Entry {
    std::string key;
    DnsAnswer answer;
    Clock::time_point expires;
  };
  using Lru = std::list<Entry>;  // front = most recently used

  DnsCacheLimits limits_;
  Lru lru_;
  std::unordered_map<std::string_view, Lru::iterator> index_;  // views into Entry::key
  uint64_t evictions_ = 0;
};

}  // namespace mxscreen::proxy
