// proxy/store_memory.h: the memory engine (store.backend = "memory"), for tests and
// throw-away runs: a hash map with expiry times, bounded at StoreLimits::max_entries entries
// and StoreLimits::memory_max_bytes bytes (keys, values and a fixed estimate per entry). When
// either bound is reached, expired entries are dropped; if that frees nothing, new keys are
// refused (the caller fails open: no greylisting, no cache) and live ones are never evicted,
// so that a flood of new triplets cannot push out the ones that passed. Nothing survives a
// restart. Every call answers at once.
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
  void put_if(const std::string& key, const std::optional<std::string>& expected,
              const std::string& value, std::chrono::seconds ttl, StatusCallback cb = {}) override;
  void remove(const std::string& key, StatusCallback cb = {}) override;
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override;
  std::string_view engine() const override { return "memory"; }

  std::size_t size() const { return entries_.size(); }
  // What the entries are counted as against memory_max_bytes.
  std::size_t bytes() const { return bytes_; }
  // Bytes counted per entry beside its key and value: the hash node, the two string headers,
  // the expiry and the bucket pointer (libstdc++, 64-bit).
  static constexpr std::size_t kEntryOverhead = 96;

 private:
  struct Entry {
    std::string value;
    int64_t expires_at = 0;  // epoch seconds, 0 = never
  };

  bool expired(const Entry& entry, int64_t now) const {
    return entry.expires_at != 0 && entry.expires_at <= now;
  }
  static std::size_t cost(const std::string& key, const std::string& value) {
    return key.size() + value.size() + kEntryOverhead;
  }
  // Room for one more key (`more` = its cost) or for a value that grows by `more` bytes:
  // evicts expired entries when full (a full scan, at most once per second so that a store
  // full of live keys does not scan on every write).
  bool make_room(int64_t now, std::size_t more, bool new_key);
  void erase(std::unordered_map<std::string, Entry>::iterator it);

  StoreLimits limits_;
  StoreClock clock_;
  std::unordered_map<std::string, Entry> entries_;
  std::size_t bytes_ = 0;  // sum of cost() over entries_
  int64_t last_eviction_scan_ = -1;
  bool full_ = false;  // logged once per episode of refused writes
};

}  // namespace mxscreen::proxy
