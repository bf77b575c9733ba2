#include "checks/replies.h"

#include <gtest/gtest.h>

namespace mxscreen::checks::replies {
namespace {

TEST(RepliesTest, GreetingIsOneLineOrOpensAMultiLineOne) {
  EXPECT_EQ(greeting("mx.example.org ESMTP"), "220 mx.example.org ESMTP");
  EXPECT_EQ(greeting("mx.example.org ESMTP", true), "220-mx.example.org ESMTP");
}

// postscreen's texts, which admins grep for; the codes are what a client's retry logic reads.
TEST(RepliesTest, ServiceRepliesAreTemporaryOrAProtocolDrop) {
  for (auto reply : {kAllPortsBusy, kServiceUnavailable, kShuttingDown}) {
    EXPECT_EQ(reply.substr(0, 10), "421 4.3.2 ") << reply;
  }
  EXPECT_EQ(kPregreetDrop, "521 5.5.1 Protocol error");
}

}  // namespace
}  // namespace mxscreen::checks::replies
