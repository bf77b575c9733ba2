// tests/checks/pipelining_test.cc: the command pipelining test (checks/pipelining.h): a hit
// only when more input was queued and PIPELINING was not offered, then the action decides.
#include "checks/pipelining.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

TEST(ChecksPipelining, HitOnlyWhenQueuedAndNotOffered) {
  Verdict hit = pipelining_verdict(Action::kEnforce, true, false);
  EXPECT_EQ(hit.outcome, Outcome::kEnforce);
  EXPECT_EQ(hit.reason, "command pipelining");
  // PIPELINING offered (RFC 2920): sending ahead is allowed.
  EXPECT_TRUE(pipelining_verdict(Action::kEnforce, true, true).passed());
  // Waited for the reply.
  EXPECT_TRUE(pipelining_verdict(Action::kEnforce, false, false).passed());
  EXPECT_TRUE(pipelining_verdict(Action::kEnforce, false, true).passed());
}

TEST(ChecksPipelining, VerdictFollowsTheAction) {
  EXPECT_EQ(pipelining_verdict(Action::kOff, true, false).outcome, Outcome::kPass);
  EXPECT_EQ(pipelining_verdict(Action::kIgnore, true, false).outcome, Outcome::kIgnore);
  EXPECT_EQ(pipelining_verdict(Action::kEnforce, true, false).outcome, Outcome::kEnforce);
  EXPECT_EQ(pipelining_verdict(Action::kDrop, true, false).outcome, Outcome::kDrop);
  EXPECT_TRUE(pipelining_verdict(Action::kDrop, true, true).passed());
}

}  // namespace
}  // namespace mxscreen::checks
