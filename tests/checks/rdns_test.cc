#include "checks/rdns.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

TEST(ChecksRdns, OffPassesEverything) {
  EXPECT_FALSE(rdns_reject_reply(PtrFact::kNone, FcrdnsFact::kNoPtr, "192.0.2.7", {}));
}

TEST(ChecksRdns, UnknownReverseProvenAbsentIs550TempfailIs450) {
  RdnsPolicy p{true, false};
  EXPECT_EQ(*rdns_reject_reply(PtrFact::kNone, FcrdnsFact::kNoPtr, "192.0.2.7", p),
            "550 5.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.7]");
  EXPECT_EQ(
      rdns_reject_reply(PtrFact::kTempFail, FcrdnsFact::kTempFail, "192.0.2.7", p)->substr(0, 10),
      "450 4.7.25");
  EXPECT_FALSE(rdns_reject_reply(PtrFact::kFound, FcrdnsFact::kMismatch, "192.0.2.7", p));
}

TEST(ChecksRdns, UnknownClientNeedsForwardConfirmation) {
  RdnsPolicy p{false, true};
  EXPECT_FALSE(rdns_reject_reply(PtrFact::kFound, FcrdnsFact::kConfirmed, "192.0.2.7", p));
  EXPECT_EQ(*rdns_reject_reply(PtrFact::kFound, FcrdnsFact::kMismatch, "192.0.2.7", p),
            "550 5.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]");
  EXPECT_EQ(
      rdns_reject_reply(PtrFact::kPending, FcrdnsFact::kPending, "192.0.2.7", p)->substr(0, 3),
      "450");
}

}  // namespace
}  // namespace mxscreen::checks
