#include "checks/pregreet.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;
using Clock = PregreetTest::Clock;

TEST(ChecksPregreet, SilentClientPasses) {
  PregreetTest test(Action::kDrop, Clock::time_point{});
  EXPECT_FALSE(test.hit());
  EXPECT_TRUE(test.verdict().passed());
}

TEST(ChecksPregreet, EarlyTalkerIsDroppedAndTimed) {
  Clock::time_point t0{};
  PregreetTest test(Action::kDrop, t0);
  test.on_client_bytes(t0 + 1500ms, "EHLO bot\r\n");
  test.on_client_bytes(t0 + 1600ms, "MAIL FROM:<a@b>\r\n");
  EXPECT_TRUE(test.hit());
  EXPECT_EQ(test.bytes(), 10u + 17u);
  EXPECT_EQ(test.after(), 1500ms);
  EXPECT_EQ(test.sample(), "EHLO bot\r\n");
  EXPECT_EQ(test.verdict().outcome, Outcome::kDrop);
}

TEST(ChecksPregreet, IgnoreOnlyLogs) {
  PregreetTest test(Action::kIgnore, Clock::time_point{});
  test.on_client_bytes(Clock::time_point{} + 10ms, "x");
  EXPECT_EQ(test.verdict().outcome, Outcome::kIgnore);
}

TEST(ChecksPregreet, EnforceCarriesOnToRejectAtRcpt) {
  PregreetTest test(Action::kEnforce, Clock::time_point{});
  test.on_client_bytes(Clock::time_point{}, "x");
  EXPECT_EQ(test.verdict().outcome, Outcome::kEnforce);
}

TEST(ChecksPregreet, OffNeverHits) {
  PregreetTest test(Action::kOff, Clock::time_point{});
  test.on_client_bytes(Clock::time_point{}, "x");
  EXPECT_TRUE(test.verdict().passed());
}

TEST(ChecksPregreet, SampleIsBounded) {
  PregreetTest test(Action::kDrop, Clock::time_point{});
  test.on_client_bytes(Clock::time_point{}, std::string(100000, 'A'));
  EXPECT_EQ(test.sample().size(), PregreetTest::kSampleBytes);
  EXPECT_EQ(test.bytes(), 100000u);
}

}  // namespace
}  // namespace mxscreen::checks
