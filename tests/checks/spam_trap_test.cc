#include "checks/spam_trap.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

TEST(ChecksSpamTrap, MatchesWithoutRegardToCase) {
  TrapRecipients traps({"Trap@Example.TEST", "old-sales@example.test"});
  EXPECT_TRUE(traps.is_trap("trap@example.test"));
  EXPECT_TRUE(traps.is_trap("OLD-SALES@example.test"));
  EXPECT_FALSE(traps.is_trap("user@example.test"));
  EXPECT_FALSE(traps.is_trap("trap@example.test.evil"));
  EXPECT_FALSE(traps.is_trap(""));
  EXPECT_FALSE(TrapRecipients().is_trap("trap@example.test"));
  EXPECT_TRUE(TrapRecipients().empty());
}

TEST(SpamTrapTest, TrapReplyNamesTheBannedClient) {
  auto client = protocol::IpAddress::parse("2001:db8::7");
  ASSERT_TRUE(client);
  EXPECT_EQ(trap_reply(*client), "521 5.7.1 Service unavailable; client [2001:db8::7] is banned");
}

}  // namespace
}  // namespace mxscreen::checks
