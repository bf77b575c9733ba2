// checks/pipelining.cc: see pipelining.h.
#include "checks/pipelining.h"

namespace mxscreen::checks {

Verdict pipelining_verdict(Action action, bool more_input_queued, bool pipelining_offered) {
  return verdict_for(action, more_input_queued && !pipelining_offered, "command pipelining");
}

}  // namespace mxscreen::checks
