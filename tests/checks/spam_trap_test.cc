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

}  // namespace
}  // namespace mxscreen::checks
