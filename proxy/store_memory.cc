// proxy/store_memory.cc: see store_memory.h.
#include "proxy/store_memory.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <map>

#include "proxy/log.h"

namespace mxscreen::proxy {
namespace {

int64_t expiry(int64_t now, std::chrono::seconds ttl) {
  return ttl.count() > 0 ? now + ttl.count() : 0;
}

}  // namespace

MemoryStore::MemoryStore(const StoreLimits& limits, StoreClock clock)
    : limits_(limits), clock_(std::move(clock)) {}

bool MemoryStore::make_room(int64_t now, std::size_t more, bool new_key) {
  auto fits = [&] {
    return (!new_key || entries_.size() < limits_.max_entries) &&
           bytes_ + more <= limits_.memory_max_bytes;
  };
  if (!fits() && last_eviction_scan_ != now) {
    last_eviction_scan_ = now;
    for (auto it = entries_.begin(); it != entries_.end();) {
      auto next = std::next(it);
      if (expired(it->second, now)) erase(it);
      it = next;
    }
  }
  if (fits()) {
    if (full_) Log::info("memory store has room again");
    full_ = false;
    return true;
  }
  count_store_error(engine(), "full");
  if (!full_) {
    Log::warning("memory store full (" + std::to_string(entries_.size()) + " live entries, " +
                 std::to_string(bytes_) + " bytes; limits " + std::to_string(limits_.max_entries) +
                 " entries, store.memory_max_bytes = " + std::to_string(limits_.memory_max_bytes) +
                 "): new keys refused; failing open");
  }
  full_ = true;
  return false;
}

void MemoryStore::erase(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= cost(it->first, it->second.value);
  entries_.erase(it);
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
    erase(it);
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
    if (!make_room(now, cost(key, value), true)) {
      if (cb) cb(StoreStatus::kUnavailable);
      return;
    }
    entries_.emplace(key, Entry{value, expiry(now, ttl)});
    bytes_ += cost(key, value);
  } else {
    const std::size_t old_size = it->second.value.size();
    if (value.size() > old_size && !make_room(now, value.size() - old_size, false)) {
      if (cb) cb(StoreStatus::kUnavailable);
      return;
    }
    it = entries_.find(key);  // make_room may have swept expired entries, this one too
    if (it == entries_.end()) {
      entries_.emplace(key, Entry{value, expiry(now, ttl)});
      bytes_ += cost(key, value);
    } else {
      bytes_ = bytes_ - it->second.value.size() + value.size();
      it->second = Entry{value, expiry(now, ttl)};
    }
  }
  if (cb) cb(StoreStatus::kOk);
}

void MemoryStore::increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                            IncrementCallback cb) {
  count_store_operation(engine(), "increment");
  int64_t now = clock_();
  auto it = entries_.find(key);
  if (it != entries_.end() && expired(it->second, now)) {
    erase(it);
    it = entries_.end();
  }
  if (it == entries_.end()) {
    std::string value = std::to_string(by);
    if (!make_room(now, cost(key, value), true)) {
      if (cb) cb(StoreStatus::kUnavailable, 0);
      return;
    }
    bytes_ += cost(key, value);
    entries_.emplace(key, Entry{std::move(value), expiry(now, ttl)});
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
  // A number grows by a digit or two: counted, never refused (the bound is on keys).
  std::string next = std::to_string(value);
  bytes_ = bytes_ - text.size() + next.size();
  it->second.value = std::move(next);
  if (cb) cb(StoreStatus::kOk, value);
}

void MemoryStore::put_if(const std::string& key, const std::optional<std::string>& expected,
                         const std::string& value, std::chrono::seconds ttl, StatusCallback cb) {
  count_store_operation(engine(), "put_if");
  auto it = entries_.find(key);
  bool present = it != entries_.end() && !expired(it->second, clock_());
  if (expected ? !present || it->second.value != *expected : present) {
    if (cb) cb(StoreStatus::kConflict);
    return;
  }
  // One call on one thread (workers share the engine under a lock): nothing comes between.
  put(key, value, ttl, std::move(cb));
}

void MemoryStore::remove(const std::string& key, StatusCallback cb) {
  count_store_operation(engine(), "remove");
  if (auto it = entries_.find(key); it != entries_.end()) erase(it);
  if (cb) cb(StoreStatus::kOk);
}

// The hash map has no order: a page is the `max` smallest matching keys after the cursor,
// found in one pass over every entry (bounded by StoreLimits::max_entries).
void MemoryStore::scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                            const ScanFilter& keep, PageCallback cb) {
  count_store_operation(engine(), "scan");
  max = std::max<std::size_t>(max, 1);
  int64_t now = clock_();
  std::map<std::string_view, const std::string*> smallest;  // key -> value, at most max + 1
  for (const auto& [key, entry] : entries_) {
    if (!key.starts_with(prefix) || (!cursor.empty() && key <= cursor) || expired(entry, now)) {
      continue;
    }
    if (smallest.size() > max && key > smallest.rbegin()->first) continue;
    if (keep && !keep(key, entry.value)) continue;
    smallest.emplace(key, &entry.value);
    if (smallest.size() > max + 1) smallest.erase(std::prev(smallest.end()));
  }
  ScanPage page;
  for (const auto& [key, value] : smallest) {
    if (page.items.size() == max) {
      page.next = page.items.back().key;
      break;
    }
    page.items.push_back({std::string(key), *value});
  }
  if (cb) cb(StoreStatus::kOk, std::move(page));
}

}  // namespace mxscreen::proxy
