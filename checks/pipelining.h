// checks/pipelining.h: the command pipelining test (postscreen_pipelining_enable): a client
// that sends a command before the reply to the previous one, when PIPELINING was not offered,
// is a bot that does not wait for the server.
#pragma once

#include "checks/verdict.h"

namespace mxscreen::checks {

// `more_input_queued`: bytes of a further command were already received when this command
// was taken. `pipelining_offered`: the EHLO reply listed PIPELINING.
Verdict pipelining_verdict(Action action, bool more_input_queued, bool pipelining_offered);

}  // namespace mxscreen::checks
