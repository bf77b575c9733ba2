#include "checks/ban.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using namespace std::chrono_literals;

TEST(ChecksBan, EscalatesAndCaps) {
  BanPolicy p{3600s, 4 * 3600s, 3, 600s};
  EXPECT_EQ(ban_duration(0, p), 3600s);
  EXPECT_EQ(ban_duration(1, p), 7200s);
  EXPECT_EQ(ban_duration(2, p), 4 * 3600s);
  EXPECT_EQ(ban_duration(10, p), 4 * 3600s);
  EXPECT_EQ(ban_duration(1000000, p), 4 * 3600s);
}

TEST(ChecksBan, FakeMxOnlyClientsAreBanned) {
  EXPECT_FALSE(fake_mx_ban_due(2, false, 3));
  EXPECT_TRUE(fake_mx_ban_due(3, false, 3));
  EXPECT_FALSE(fake_mx_ban_due(30, true, 3));   // also came to the real MX: a real MTA
  EXPECT_FALSE(fake_mx_ban_due(30, false, 0));  // off
}

TEST(ChecksBan, RecordsExpireWithTheFakeClock) {
  BanRecord r{1000, "fake_mx"};
  auto text = r.to_string();
  EXPECT_EQ(text, "1000:fake_mx");
  EXPECT_TRUE(is_banned(text, 999));
  EXPECT_FALSE(is_banned(text, 1000));
  EXPECT_FALSE(is_banned(std::nullopt, 0));
  EXPECT_FALSE(is_banned("garbage", 0));
  EXPECT_EQ(BanRecord::parse("5:a:b")->reason, "a:b");
}

}  // namespace
}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

TEST(ChecksBan, ReplyNamesTheClient) {
  EXPECT_EQ(ban_reply(*protocol::IpAddress::parse("2001:db8::7")),
            "554 5.7.1 Service unavailable; client [2001:db8::7] is banned");
}

}  // namespace
}  // namespace mxscreen::checks
