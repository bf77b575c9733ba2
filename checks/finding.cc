// checks/finding.cc: see finding.h.
#include "checks/finding.h"

#include <cstdio>

#include "checks/plan.h"

namespace mxscreen::checks {

bool Finding::ends_session() const {
  return then == Then::kReplyAndClose || then == Then::kClose || then == Then::kReset ||
         then == Then::kBanAndClose;
}

Finding& Finding::closes(Then how, std::string reply_line) {
  then = how;
  reply = std::move(reply_line);
  if (Plan::is_strike(test)) strike = test;
  return *this;
}

Finding& Finding::counted_as_test_result() {
  counter = kTestResults;
  labels = "test=\"" + test + "\",outcome=\"" + outcome + "\"";
  return *this;
}

std::string format_seconds(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", seconds);
  return buf;
}

}  // namespace mxscreen::checks
