#include "checks/errors.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;

// The classic anti-spam recipe scaled down: sleep 1s, soft limit 1, hard limit 3.
TEST(ChecksErrors, SleepScheduleAndHardLimit) {
  ErrorCounter counter({1000ms, 1, 3, 100});
  auto first = counter.on_error_reply();
  EXPECT_EQ(first.delay, 0ms);
  EXPECT_FALSE(first.disconnect);
  auto second = counter.on_error_reply();
  EXPECT_EQ(second.delay, 1000ms);
  EXPECT_FALSE(second.disconnect);
  auto third = counter.on_error_reply();
  EXPECT_TRUE(third.disconnect);
  EXPECT_EQ(counter.errors(), 3);
}

TEST(ChecksErrors, PostfixDefaults) {
  ErrorCounter counter(ErrorPolicy{});
  for (int i = 1; i <= 10; ++i) EXPECT_EQ(counter.on_error_reply().delay, 0ms) << i;
  for (int i = 11; i <= 19; ++i) {
    auto d = counter.on_error_reply();
    EXPECT_EQ(d.delay, 1000ms) << i;
    EXPECT_FALSE(d.disconnect) << i;
  }
  EXPECT_TRUE(counter.on_error_reply().disconnect);
}

TEST(ChecksErrors, JunkCommandsCountOnlyPastTheLimit) {
  ErrorCounter counter({1000ms, 0, 2, 3});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(counter.on_junk_command().disconnect);
  EXPECT_EQ(counter.errors(), 0);
  auto fourth = counter.on_junk_command();
  EXPECT_EQ(counter.errors(), 1);
  EXPECT_EQ(fourth.delay, 1000ms);
  EXPECT_TRUE(counter.on_junk_command().disconnect);
}

TEST(ChecksErrors, StressModeDisconnectsAtTheFirstError) {
  ErrorCounter counter(ErrorPolicy{}.under_stress());
  auto d = counter.on_error_reply();
  EXPECT_TRUE(d.disconnect);
  EXPECT_EQ(d.delay, 0ms);
}

}  // namespace
}  // namespace mxscreen::checks
