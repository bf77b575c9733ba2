// checks/pregreet.cc: see pregreet.h.
#include "checks/pregreet.h"

#include <algorithm>

#include "checks/replies.h"
#include "protocol/escape.h"

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

Finding pregreet_hit(const PregreetTest& test, std::string_view who) {
  Finding f;
  f.test = "pregreet";
  f.outcome = test.verdict().outcome == Outcome::kDrop ? "drop" : "hit";
  f.word = "PREGREET";
  f.detail.append("PREGREET ")
      .append(std::to_string(test.bytes()))
      .append(" after ")
      .append(format_seconds(test.after().count() / 1000.0))
      .append(" from ")
      .append(who)
      .append(": ")
      .append(protocol::printable(test.sample()));
  if (test.verdict().outcome != Outcome::kDrop) return f;
  f.counter = "mxscreen_pregreet_total";
  f.labels = "verdict=\"drop\"";
  return f.closes(Finding::Then::kReplyAndClose, std::string(replies::kPregreetDrop));
}

Finding pregreet_verdict(const PregreetTest& test) {
  auto outcome = test.verdict().outcome;
  Finding f;
  f.test = "pregreet";
  f.outcome = !test.hit() ? "pass" : outcome == Outcome::kEnforce ? "enforce" : "ignore";
  f.counter = "mxscreen_pregreet_total";
  f.labels = "verdict=\"" + f.outcome + "\"";
  if (outcome == Outcome::kEnforce) f.then = Finding::Then::kEnforce;
  return f;
}

}  // namespace mxscreen::checks
