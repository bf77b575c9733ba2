// checks/bare_newline.h: the bare newline test (postscreen_bare_newline_enable): a line that
// ends in LF without CR is sent by sloppy bot software, never by a real MTA.
#pragma once

#include "checks/verdict.h"

namespace mxscreen::checks {

inline Verdict bare_newline_verdict(Action action, bool bare_lf) {
  return verdict_for(action, bare_lf, "bare newline");
}

}  // namespace mxscreen::checks
