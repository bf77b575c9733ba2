// proxy/backend_slots.h: the backend's slots (backend.max_sessions) and the FIFO queue of
// sessions waiting for one (backend.queue_max), shared by every worker (DESIGN.md "Bursts").
// A session asks for a slot; it gets one at once only when nobody waits before it, else it
// takes a place in the queue, unless the queue is full. A slot given back goes to the oldest
// waiter, whichever worker it lives on: release() returns the waiters that now own a slot, and
// the caller tells each on its own loop. A waiter that leaves (client gone, queue timeout)
// frees its place at once. No clock and no loop here: time-outs are the worker's.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace mxscreen::proxy {

class Handoff;

class BackendSlots {
 public:
  // Who waits: the worker (its index) and a session's handoff on that worker's loop. `alive`
  // is the session's liveness flag, read only on its own worker.
  struct Waiter {
    std::size_t worker = 0;
    Handoff* handoff = nullptr;
    std::weak_ptr<bool> alive;
    uint64_t ticket = 0;  // set by acquire()
  };
  enum class Result { kGranted, kQueued, kFull };

  // A slot for `waiter`: kGranted (the slot is the caller's), kQueued (waiter->ticket says
  // which place; a later release() hands it the slot) or kFull (no slot, no place: refuse).
  // The limits are passed in, so a reload applies to the next call.
  Result acquire(std::size_t max_sessions, std::size_t queue_max, Waiter* waiter);
  // A slot is given back. Returns the waiters (oldest first) that own a slot now.
  std::vector<Waiter> release(std::size_t max_sessions);
  // The waiter with `ticket` leaves the queue. False: it was not there any more (a slot is on
  // its way to it; it must release() that slot when it arrives).
  bool leave(uint64_t ticket);

  // Would acquire() answer kFull now?
  bool full(std::size_t max_sessions, std::size_t queue_max) const;
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  uint64_t next_ticket_ = 1;  // under mutex_
  // Under mutex_, in ticket order (arrival order). A deque, not a map: 40 bytes a waiter
  // instead of a 96-byte tree node (a queued client costs what a held one does, issue 15).
  std::deque<Waiter> waiters_;
  std::atomic<std::size_t> used_{0};    // written under mutex_
  std::atomic<std::size_t> queued_{0};  // waiters_.size(), written under mutex_
};

}  // namespace mxscreen::proxy
