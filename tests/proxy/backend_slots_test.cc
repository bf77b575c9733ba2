// tests/proxy/backend_slots_test.cc: the backend slots and their FIFO queue: a free slot is
// never taken past a waiter, a freed slot goes to the oldest waiter, the queue is bounded, a
// waiter that leaves frees its place, and a leave that raced a grant says so.
#include "proxy/backend_slots.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

using Result = BackendSlots::Result;

BackendSlots::Waiter waiter(std::size_t worker) {
  BackendSlots::Waiter w;
  w.worker = worker;
  return w;
}

TEST(BackendSlots, GrantsUpToMaxThenQueuesThenRefuses) {
  BackendSlots slots;
  auto a = waiter(0), b = waiter(0), c = waiter(1), d = waiter(1);
  EXPECT_EQ(slots.acquire(2, 1, &a), Result::kGranted);
  EXPECT_EQ(slots.acquire(2, 1, &b), Result::kGranted);
  EXPECT_FALSE(slots.full(2, 1));
  EXPECT_EQ(slots.acquire(2, 1, &c), Result::kQueued);
  EXPECT_TRUE(slots.full(2, 1));
  EXPECT_EQ(slots.acquire(2, 1, &d), Result::kFull);
  EXPECT_EQ(slots.used(), 2u);
  EXPECT_EQ(slots.queued(), 1u);
}

TEST(BackendSlots, NoQueueMeansRefusedAtMax) {
  BackendSlots slots;
  auto a = waiter(0), b = waiter(0);
  EXPECT_EQ(slots.acquire(1, 0, &a), Result::kGranted);
  EXPECT_TRUE(slots.full(1, 0));
  EXPECT_EQ(slots.acquire(1, 0, &b), Result::kFull);
}

TEST(BackendSlots, AFreedSlotGoesToTheOldestWaiterAcrossWorkers) {
  BackendSlots slots;
  auto a = waiter(0), first = waiter(1), second = waiter(0);
  ASSERT_EQ(slots.acquire(1, 10, &a), Result::kGranted);
  ASSERT_EQ(slots.acquire(1, 10, &first), Result::kQueued);
  ASSERT_EQ(slots.acquire(1, 10, &second), Result::kQueued);
  auto granted = slots.release(1);
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_EQ(granted[0].ticket, first.ticket);
  EXPECT_EQ(granted[0].worker, 1u);
  EXPECT_EQ(slots.used(), 1u);  // passed on, not freed
  EXPECT_EQ(slots.queued(), 1u);
  granted = slots.release(1);
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_EQ(granted[0].ticket, second.ticket);
  EXPECT_TRUE(slots.release(1).empty());
  EXPECT_EQ(slots.used(), 0u);
}

TEST(BackendSlots, AFreeSlotIsNotTakenPastAWaiter) {
  BackendSlots slots;
  auto a = waiter(0), b = waiter(0), late = waiter(0);
  ASSERT_EQ(slots.acquire(1, 10, &a), Result::kGranted);
  ASSERT_EQ(slots.acquire(1, 10, &b), Result::kQueued);
  // A reload raised the limit: the newcomer still queues behind b; the next release serves
  // both (b first).
  EXPECT_EQ(slots.acquire(3, 10, &late), Result::kQueued);
  auto granted = slots.release(3);
  ASSERT_EQ(granted.size(), 2u);
  EXPECT_EQ(granted[0].ticket, b.ticket);
  EXPECT_EQ(granted[1].ticket, late.ticket);
  EXPECT_EQ(slots.used(), 2u);
}

TEST(BackendSlots, AWaiterThatLeavesFreesItsPlace) {
  BackendSlots slots;
  auto a = waiter(0), gone = waiter(0), next = waiter(0), extra = waiter(0);
  ASSERT_EQ(slots.acquire(1, 2, &a), Result::kGranted);
  ASSERT_EQ(slots.acquire(1, 2, &gone), Result::kQueued);
  ASSERT_EQ(slots.acquire(1, 2, &next), Result::kQueued);
  EXPECT_TRUE(slots.leave(gone.ticket));
  EXPECT_EQ(slots.queued(), 1u);
  EXPECT_EQ(slots.acquire(1, 2, &extra), Result::kQueued);  // its place is free again
  auto granted = slots.release(1);
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_EQ(granted[0].ticket, next.ticket);  // the one that left is never served
}

TEST(BackendSlots, LeavingFromTheMiddleKeepsTheOrderOfTheRest) {
  BackendSlots slots;
  auto a = waiter(0), first = waiter(0), gone = waiter(1), last = waiter(0);
  ASSERT_EQ(slots.acquire(1, 3, &a), Result::kGranted);
  for (auto* w : {&first, &gone, &last}) ASSERT_EQ(slots.acquire(1, 3, w), Result::kQueued);
  EXPECT_TRUE(slots.leave(gone.ticket));
  EXPECT_FALSE(slots.leave(gone.ticket));  // once
  auto granted = slots.release(3);         // a reload raised max_sessions
  ASSERT_EQ(granted.size(), 2u);
  EXPECT_EQ(granted[0].ticket, first.ticket);
  EXPECT_EQ(granted[1].ticket, last.ticket);
  EXPECT_EQ(slots.queued(), 0u);
}

TEST(BackendSlots, LeavingAfterTheGrantSaysSo) {
  BackendSlots slots;
  auto a = waiter(0), b = waiter(1);
  ASSERT_EQ(slots.acquire(1, 1, &a), Result::kGranted);
  ASSERT_EQ(slots.acquire(1, 1, &b), Result::kQueued);
  ASSERT_EQ(slots.release(1).size(), 1u);  // the slot is on its way to b
  EXPECT_FALSE(slots.leave(b.ticket));     // b must give it back itself
  EXPECT_EQ(slots.used(), 1u);
  EXPECT_TRUE(slots.release(1).empty());
  EXPECT_EQ(slots.used(), 0u);
}

}  // namespace
}  // namespace mxscreen::proxy
