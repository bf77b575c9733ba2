// proxy/store_memory.cc: see store_memory.h.
#include "proxy/store_memory.h"

#include <charconv>

#include "proxy/log.h"

namespace mxscreen::proxy {
namespace {

int64_t expiry(int64_t now, std::chrono::seconds ttl) {
  return ttl.count() > 0 ? now + ttl.count() : 0;
}

}  // namespace

MemoryStore::MemoryStore(const StoreLimits& limits, StoreClock clock)
    : limits_(limits), clock_(std::move(clock)) {}

bool MemoryStore::make_room(int64_t now) {
  if (entries_.size() >= limits_.max_entries && last_eviction_scan_ != now) {
    last_eviction_scan_ = now;
    std::erase_if(entries_, [&](const auto& item) { return expired(item.second, now); });
  }
  if (entries_.size() < limits_.max_entries) {
    if (full_) Log::info("memory store has room again");
    full_ = false;
    return true;
  }
  count_store_error(engine(), "full");
  if (!full_) {
    Log::warning("memory store full (" + std::to_string(limits_.max_entries) +
                 " live entries): new keys refused; failing open");
  }
  full_ = true;
  return false;
}

void MemoryStore::get(const std::string& key, GetCallback cb) {
  count_store_operation(engine(), "get");
  int64_t now = clock_();
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (cb) cb(StoreStatus::kNotFound, {});
    return;
  }
  if (expired(it->second, now)) {
    entries_.erase(it);
    if (cb) cb(StoreStatus::kNotFound, {});
    return;
  }
  if (cb) cb(StoreStatus::kOk, it->second.value);
}

void MemoryStore::put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
                      StatusCallback cb) {
  count_store_operation(engine(), "put");
  int64_t now = clock_();
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (!make_room(now)) {
      if (cb) cb(StoreStatus::kUnavailable);
      return;
    }
    entries_.emplace(key, Entry{value, expiry(now, ttl)});
  } else {
    it->second = Entry{value, expiry(now, ttl)};
  }
  if (cb) cb(StoreStatus::kOk);
}

void MemoryStore::increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                            IncrementCallback cb) {
  count_store_operation(engine(), "increment");
  int64_t now = clock_();
  auto it = entries_.find(key);
  if (it != entries_.end() && expired(it->second, now)) {
    entries_.erase(it);
    it = entries_.end();
  }
  if (it == entries_.end()) {
    if (!make_room(now)) {
      if (cb) cb(StoreStatus::kUnavailable, 0);
      return;
    }
    entries_.emplace(key, Entry{std::to_string(by), expiry(now, ttl)});
    if (cb) cb(StoreStatus::kOk, by);
    return;
  }
  const std::string& text = it->second.value;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() ||
      __builtin_add_overflow(value, by, &value)) {
    count_store_error(engine(), "not_integer");
    if (cb) cb(StoreStatus::kUnavailable, 0);
    return;
  }
  it->second.value = std::to_string(value);
  if (cb) cb(StoreStatus::kOk, value);
}

void MemoryStore::remove(const std::string& key, StatusCallback cb) {
  count_store_operation(engine(), "remove");
  entries_.erase(key);
  if (cb) cb(StoreStatus::kOk);
}

void MemoryStore::scan(const std::string& prefix, std::size_t max, ScanCallback cb) {
  count_store_operation(engine(), "scan");
  int64_t now = clock_();
  std::vector<Item> items;
  for (const auto& [key, entry] : entries_) {
    if (items.size() >= max) break;
    if (key.starts_with(prefix) && !expired(entry, now)) items.push_back({key, entry.value});
  }
  if (cb) cb(StoreStatus::kOk, std::move(items));
}

}  // namespace mxscreen::proxy
