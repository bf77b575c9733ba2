// proxy/backend_slots.cc: see backend_slots.h.
#include "proxy/backend_slots.h"

#include <algorithm>

namespace mxscreen::proxy {

BackendSlots::Result BackendSlots::acquire(std::size_t max_sessions, std::size_t queue_max,
                                           Waiter* waiter) {
  std::lock_guard lock(mutex_);
  // First come, first served: a free slot is taken only when nobody waits for one.
  if (waiters_.empty() && used_ < max_sessions) {
    used_.fetch_add(1, std::memory_order_relaxed);
    return Result::kGranted;
  }
  if (waiters_.size() >= queue_max) return Result::kFull;
  waiter->ticket = next_ticket_++;
  waiters_.push_back(*waiter);  // tickets grow: the deque stays in ticket order
  queued_.store(waiters_.size(), std::memory_order_relaxed);
  return Result::kQueued;
}

std::vector<BackendSlots::Waiter> BackendSlots::release(std::size_t max_sessions) {
  std::vector<Waiter> granted;
  std::lock_guard lock(mutex_);
  if (used_ > 0) used_.fetch_sub(1, std::memory_order_relaxed);
  // Usually one; more when a reload raised backend.max_sessions.
  while (!waiters_.empty() && used_ < max_sessions) {
    granted.push_back(std::move(waiters_.front()));
    waiters_.pop_front();
    used_.fetch_add(1, std::memory_order_relaxed);
  }
  queued_.store(waiters_.size(), std::memory_order_relaxed);
  return granted;
}

bool BackendSlots::leave(uint64_t ticket) {
  std::lock_guard lock(mutex_);
  auto it = std::lower_bound(waiters_.begin(), waiters_.end(), ticket,
                             [](const Waiter& w, uint64_t t) { return w.ticket < t; });
  bool was_waiting = it != waiters_.end() && it->ticket == ticket;
  if (was_waiting) waiters_.erase(it);
  queued_.store(waiters_.size(), std::memory_order_relaxed);
  return was_waiting;
}

bool BackendSlots::full(std::size_t max_sessions, std::size_t queue_max) const {
  std::lock_guard lock(mutex_);
  return used_ >= max_sessions && waiters_.size() >= queue_max;
}

}  // namespace mxscreen::proxy
