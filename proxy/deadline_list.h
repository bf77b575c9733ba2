// proxy/deadline_list.h: one libuv timer for many deadlines set with the same delay (every
// session's smtp.command_time_limit, from the start of its dialogue), which therefore fall due in
// the order they were set. A waiter is an Entry its owner keeps and leaves in O(1) when it moves
// on: a client in the dialogue costs an Entry instead of a uv_timer_t of its own, and 10,000
// clients ending their greet wait at once start 10,000 dialogues (issue 15).
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class DeadlineList;

// A place in a DeadlineList. Destroying it leaves the list; it must not outlive the list it is
// in (the Server's lists outlive its sessions).
class DeadlineEntry {
 public:
  DeadlineEntry() = default;
  ~DeadlineEntry() { cancel(); }
  DeadlineEntry(const DeadlineEntry&) = delete;
  DeadlineEntry& operator=(const DeadlineEntry&) = delete;

  // Leaves the list: the callback will not run.
  void cancel();
  bool pending() const { return list_ != nullptr; }

 private:
  friend class DeadlineList;
  DeadlineList* list_ = nullptr;
  DeadlineEntry* prev_ = nullptr;
  DeadlineEntry* next_ = nullptr;
  uint64_t deadline_ = 0;  // uv_now() ms
  void* owner_ = nullptr;
  void (*fire_)(void* owner) = nullptr;
};

class DeadlineList {
 public:
  DeadlineList(uv_loop_t* loop, std::chrono::milliseconds delay);
  ~DeadlineList();  // the entries still in it leave it, their callbacks never run
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  std::chrono::milliseconds delay() const { return delay_; }

  // Calls (owner->*Method)() delay() from now, unless `entry` is cancelled or destroyed first.
  // An entry already in a list leaves it first.
  template <auto Method, typename Owner>
  void add(DeadlineEntry& entry, Owner* owner) {
    link(entry, owner, [](void* o) { (static_cast<Owner*>(o)->*Method)(); });
  }

 private:
  friend class DeadlineEntry;
  void link(DeadlineEntry& entry, void* owner, void (*fire)(void*));
  void unlink(DeadlineEntry& entry);
  void fired();
  void arm();

  uv_loop_t* loop_;
  std::chrono::milliseconds delay_;
  Timer timer_;
  DeadlineEntry* head_ = nullptr;  // the soonest
  DeadlineEntry* tail_ = nullptr;
};

}  // namespace mxscreen::proxy
