// checks/errors.cc: see errors.h.
#include "checks/errors.h"

namespace mxscreen::checks {

ErrorCounter::Decision ErrorCounter::on_error_reply() {
  ++errors_;
  Decision d;
  if (errors_ >= policy_.hard_limit) {
    d.disconnect = true;
  } else if (errors_ > policy_.soft_limit) {
    d.delay = policy_.sleep_time;
  }
  return d;
}

ErrorCounter::Decision ErrorCounter::on_junk_command() {
  if (++junk_ <= policy_.junk_command_limit) return {};
  return on_error_reply();
}

}  // namespace mxscreen::checks
