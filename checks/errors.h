// checks/errors.h: Postfix's error accounting for the pre-dialogue (smtpd_error_sleep_time,
// smtpd_soft_error_limit, smtpd_hard_error_limit, smtpd_junk_command_limit): every 4xx/5xx
// reply is an error; past the soft limit error replies are delayed; at the hard limit the
// client gets 421 and is disconnected. Stress mode tightens the limits as Postfix does.
#pragma once

#include <chrono>

namespace mxscreen::checks {

struct ErrorPolicy {
  std::chrono::milliseconds sleep_time{1000};
  int soft_limit = 10;
  int hard_limit = 20;
  int junk_command_limit = 100;

  // Postfix's stress-dependent defaults: hard limit 1, no sleep.
  ErrorPolicy under_stress() const {
    ErrorPolicy p = *this;
    p.hard_limit = 1;
    p.soft_limit = 0;
    p.sleep_time = std::chrono::milliseconds{0};
    return p;
  }
};

class ErrorCounter {
 public:
  explicit ErrorCounter(const ErrorPolicy& policy) : policy_(policy) {}

  struct Decision {
    std::chrono::milliseconds delay{0};  // wait this long before sending the reply
    bool disconnect = false;             // send 421 "too many errors" instead, then close
  };

  // A 4xx/5xx reply is about to go out.
  Decision on_error_reply();
  // A NOOP/VRFY/RSET/HELP/ETRN: past junk_command_limit each one counts as an error.
  Decision on_junk_command();

  int errors() const { return errors_; }

 private:
  ErrorPolicy policy_;
  int errors_ = 0;
  int junk_ = 0;
};

}  // namespace mxscreen::checks
