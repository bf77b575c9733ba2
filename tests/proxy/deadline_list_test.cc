#include "proxy/deadline_list.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <vector>

namespace mxscreen::proxy {
namespace {

using namespace std::chrono_literals;

struct Waiter {
  std::vector<int>* fired;
  int id;
  void due() { fired->push_back(id); }
};

// Runs the loop until nothing keeps it alive (the list's timer stops once it is empty).
void run(uv_loop_t* loop) { uv_run(loop, UV_RUN_DEFAULT); }

TEST(ProxyDeadlineList, FiresInOrderAndSkipsCancelledEntries) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<int> fired;
  {
    DeadlineList list(&loop, 20ms);
    Waiter a{&fired, 1}, b{&fired, 2}, c{&fired, 3};
    DeadlineEntry ea, eb, ec;
    list.add<&Waiter::due>(ea, &a);
    list.add<&Waiter::due>(eb, &b);
    list.add<&Waiter::due>(ec, &c);
    EXPECT_TRUE(eb.pending());
    eb.cancel();
    EXPECT_FALSE(eb.pending());
    run(&loop);
    EXPECT_EQ(fired, (std::vector<int>{1, 3}));
    EXPECT_FALSE(ea.pending());
    EXPECT_FALSE(ec.pending());
  }
  run(&loop);  // the list's timer closes
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(ProxyDeadlineList, AnEmptiedListDoesNotKeepTheLoopRunning) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<int> fired;
  {
    DeadlineList list(&loop, 3600s);
    Waiter a{&fired, 1};
    auto entry = std::make_unique<DeadlineEntry>();
    list.add<&Waiter::due>(*entry, &a);
    entry.reset();  // destroyed: leaves the list, whose timer stops
    uint64_t before = uv_now(&loop);
    run(&loop);
    EXPECT_LT(uv_now(&loop) - before, 1000u);
    EXPECT_TRUE(fired.empty());

    // Re-adding moves an entry to the end, with a new deadline.
    DeadlineList soon(&loop, 10ms);
    Waiter b{&fired, 2}, c{&fired, 3};
    DeadlineEntry eb, ec;
    soon.add<&Waiter::due>(eb, &b);
    soon.add<&Waiter::due>(ec, &c);
    soon.add<&Waiter::due>(eb, &b);
    run(&loop);
    EXPECT_EQ(fired, (std::vector<int>{3, 2}));
  }
  run(&loop);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace mxscreen::proxy
