// checks/pregreet.cc: see pregreet.h.
#include "checks/pregreet.h"

#include <algorithm>

namespace mxscreen::checks {

void PregreetTest::on_client_bytes(Clock::time_point now, std::string_view bytes) {
  if (bytes.empty()) return;
  if (bytes_ == 0) {
    first_at_ = now;
    sample_.assign(bytes.substr(0, std::min(bytes.size(), kSampleBytes)));
  }
  bytes_ += bytes.size();
}

Verdict PregreetTest::verdict() const { return verdict_for(action_, hit(), "pregreet"); }

}  // namespace mxscreen::checks
