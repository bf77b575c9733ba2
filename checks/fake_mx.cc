// checks/fake_mx.cc: see fake_mx.h.
#include "checks/fake_mx.h"

#include <string>

#include "checks/replies.h"

namespace mxscreen::checks {

Finding fake_mx_hit(std::string_view action_name, std::string_view who) {
  Finding f;
  f.test = "fake_mx";
  f.outcome = std::string(action_name);
  f.word = "FAKE-MX";
  f.detail.append("FAKE-MX ").append(who).append(" action=").append(action_name);
  f.fields = {{"action", std::string(action_name)}};
  f.counter = "mxscreen_fake_mx_hits_total";
  f.labels.append("action=\"").append(action_name).append("\"");
  return f;
}

Finding fake_mx_action_finding(FakeMxAction action) {
  Finding f;
  f.test = "fake_mx";
  switch (action) {
    case FakeMxAction::kReset:
      f.outcome = "reset";
      return f.closes(Finding::Then::kReset);
    case FakeMxAction::kTempfail:
      f.outcome = "tempfail";
      return f.closes(Finding::Then::kReplyAndClose, std::string(replies::kServiceUnavailable));
    case FakeMxAction::kTempfailRcpt:
      break;
  }
  f.outcome = "tempfail_rcpt";  // the dialogue answers 450 at every RCPT
  return f;
}

Finding nolisting_pass_finding(std::string_view who) {
  Finding f;
  f.test = "nolisting";
  f.outcome = "pass";
  f.word = "FAKE-MX";
  f.detail.append("FAKE-MX pass ")
      .append(who)
      .append(": tried the fake MX first, then the real one");
  f.counter = "mxscreen_nolisting_pass_total";
  return f;
}

}  // namespace mxscreen::checks
