// proxy/deadline_list.cc: see deadline_list.h.
#include "proxy/deadline_list.h"

#include <algorithm>

namespace mxscreen::proxy {

void DeadlineEntry::cancel() {
  if (list_) list_->unlink(*this);
}

DeadlineList::DeadlineList(uv_loop_t* loop, std::chrono::milliseconds delay)
    : loop_(loop), delay_(delay) {
  timer_.init<&DeadlineList::fired>(loop, this);
}

DeadlineList::~DeadlineList() {
  while (head_) unlink(*head_);
}

void DeadlineList::link(DeadlineEntry& entry, void* owner, void (*fire)(void*)) {
  entry.cancel();
  entry.list_ = this;
  // uv_now() never goes back and the delay is this list's one: the new deadline is the latest.
  entry.deadline_ = uv_now(loop_) + static_cast<uint64_t>(std::max<int64_t>(0, delay_.count()));
  entry.owner_ = owner;
  entry.fire_ = fire;
  entry.prev_ = tail_;
  entry.next_ = nullptr;
  if (tail_) {
    tail_->next_ = &entry;
  } else {
    head_ = &entry;
  }
  tail_ = &entry;
  if (head_ == &entry) arm();
}

void DeadlineList::unlink(DeadlineEntry& entry) {
  (entry.prev_ ? entry.prev_->next_ : head_) = entry.next_;
  (entry.next_ ? entry.next_->prev_ : tail_) = entry.prev_;
  entry.prev_ = entry.next_ = nullptr;
  entry.list_ = nullptr;
  // A timer armed for an entry that left fires early and re-arms for the next; with none left it
  // stops, so that it does not keep the loop running (the drain at SIGTERM).
  if (!head_) timer_.stop();
}

void DeadlineList::fired() {
  uint64_t now = uv_now(loop_);
  while (head_ && head_->deadline_ <= now) {
    DeadlineEntry& due = *head_;
    unlink(due);
    due.fire_(due.owner_);  // may end its owner, and cancel or add other entries
  }
  arm();
}

void DeadlineList::arm() {
  if (!head_) {
    timer_.stop();
    return;
  }
  uint64_t now = uv_now(loop_);
  timer_.start(std::chrono::milliseconds(head_->deadline_ > now ? head_->deadline_ - now : 0));
}

}  // namespace mxscreen::proxy
