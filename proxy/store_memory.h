// proxy/store_memory.h: the memory engine (store.backend = "memory"), for tests and
// throw-away runs: a hash map with expiry times, bounded at StoreLimits::max_entries.
// Nothing survives a restart. Every call answers at once.
#pragma once

#include <string>
#include <unordered_map>

#include "proxy/store.h"

namespace mxscreen::proxy {

class MemoryStore : public Store {
 public:
  explicit MemoryStore(const StoreLimits& limits = {}, StoreClock clock = wall_clock_seconds);

  void get(const std::string& key, GetCallback cb) override;
  void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
           StatusCallback cb = {}) override;
  void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                 IncrementCallback cb = {}) override;
  void remove(const std::string& key, StatusCallback cb = {}) override;
  void scan(const std::string& prefix, std::size_t max, ScanCallback cb) override;
  std::string_view engine() const override { return "memory"; }

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string value;
    int64_t expires_at = 0;  // epoch seconds, 0 = never
  };

  bool expired(const Entry& entry, int64_t now) const {
    return entry.expires_at != 0 && entry.expires_at <= now;
  }
  // Room for one more key: evicts expired entries when full (a full scan, at most once per
  // second so that a store full of live keys does not scan on every write).
  bool make_room(int64_t now);

  StoreLimits limits_;
  StoreClock clock_;
  std::unordered_map<std::string, Entry> entries_;
  int64_t last_eviction_scan_ = -1;
  bool full_ = false;  // logged once per episode of refused writes
};

}  // namespace mxscreen::proxy
