#include "checks/limits.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using protocol::IpAddress;
using Result = ClientLimits::Result;

TEST(ChecksLimits, ConcurrentConnectionsPerClient) {
  ClientLimits limits(2, 0);
  auto a = IpAddress::v4(192, 0, 2, 7);
  auto b = IpAddress::v4(192, 0, 2, 8);
  EXPECT_EQ(limits.on_connect(a, 0), Result::kOk);
  EXPECT_EQ(limits.on_connect(a, 0), Result::kOk);
  EXPECT_EQ(limits.on_connect(a, 0), Result::kTooManyConnections);
  EXPECT_EQ(limits.on_connect(b, 0), Result::kOk);  // another client is not affected
  limits.on_disconnect(a);
  EXPECT_EQ(limits.on_connect(a, 0), Result::kOk);
  EXPECT_EQ(limits.concurrent(a), 2);
}

TEST(ChecksLimits, RatePerMinuteWithFakeClock) {
  ClientLimits limits(0, 3);
  auto a = IpAddress::v4(192, 0, 2, 7);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limits.on_connect(a, 1000 * i), Result::kOk);
    limits.on_disconnect(a);
  }
  EXPECT_EQ(limits.on_connect(a, 59'000), Result::kTooFast);
  EXPECT_EQ(limits.on_connect(a, 60'000), Result::kOk);  // a new minute
}

TEST(ChecksLimits, SweepForgetsQuietClients) {
  ClientLimits limits(50, 10);
  for (uint8_t i = 0; i < 100; ++i) {
    limits.on_connect(IpAddress::v4(10, 0, 0, i), 0);
    limits.on_disconnect(IpAddress::v4(10, 0, 0, i));
  }
  limits.on_connect(IpAddress::v4(10, 0, 1, 1), 0);  // still connected
  EXPECT_EQ(limits.tracked(), 101u);
  limits.sweep(60'000);
  EXPECT_EQ(limits.tracked(), 1u);
}

TEST(ChecksLimits, OffMeansUnlimited) {
  ClientLimits limits(0, 0);
  auto a = IpAddress::v4(192, 0, 2, 7);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limits.on_connect(a, 0), Result::kOk);
  EXPECT_EQ(limits.concurrent(a), 1000);
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksLimits, WouldConnectCountsNothing) {
  ClientLimits limits(1, 2);
  auto a = *protocol::IpAddress::parse("192.0.2.1");
  EXPECT_EQ(limits.would_connect(a, 0), ClientLimits::Result::kOk);
  EXPECT_EQ(limits.tracked(), 0u);
  ASSERT_EQ(limits.on_connect(a, 0), ClientLimits::Result::kOk);
  EXPECT_EQ(limits.would_connect(a, 0), ClientLimits::Result::kTooManyConnections);
  limits.on_disconnect(a);
  ASSERT_EQ(limits.on_connect(a, 1), ClientLimits::Result::kOk);
  limits.on_disconnect(a);
  EXPECT_EQ(limits.would_connect(a, 2), ClientLimits::Result::kTooFast);
  EXPECT_EQ(limits.would_connect(a, 2), ClientLimits::Result::kTooFast);  // still not counted
  EXPECT_EQ(limits.would_connect(a, ClientLimits::kRateWindowMs + 1), ClientLimits::Result::kOk);
  EXPECT_EQ(client_limit_reply(a), "421 4.7.0 Error: too many connections from [192.0.2.1]");
}

}  // namespace
}  // namespace mxscreen::checks
