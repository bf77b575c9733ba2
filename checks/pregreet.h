// checks/pregreet.h: the greet (early-talker) test, postscreen_early.c's decision. The session
// sends "220-" and waits greet.wait; a client that sends anything before the final "220 "
// line is a PREGREET. The test is handed the bytes and the time; it never reads a clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "checks/finding.h"
#include "checks/verdict.h"

namespace mxscreen::checks {

class PregreetTest {
 public:
  using Clock = std::chrono::steady_clock;

  PregreetTest(Action action, Clock::time_point greeted_at)
      : action_(action), greeted_at_(greeted_at) {}

  // Bytes from the client before the final 220 line. Only the first call is remembered for
  // the log (postscreen logs the first read); later calls only add to the byte count.
  void on_client_bytes(Clock::time_point now, std::string_view bytes);

  bool hit() const { return bytes_ > 0; }
  std::size_t bytes() const { return bytes_; }
  // Seconds from the "220-" line to the first early byte.
  std::chrono::milliseconds after() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(first_at_ - greeted_at_);
  }
  // The first bytes the client sent, raw (escape before logging), at most kSampleBytes.
  const std::string& sample() const { return sample_; }

  // The verdict once the wait is over (or as soon as a hit arrives when the action is drop).
  Verdict verdict() const;

  static constexpr std::size_t kSampleBytes = 100;

 private:
  Action action_;
  Clock::time_point greeted_at_;
  Clock::time_point first_at_{};
  std::size_t bytes_ = 0;
  std::string sample_;
};

// The first early bytes (`who` is "[ip]:port"): postscreen's "PREGREET n after t from ..." line
// with the escaped sample; under greet.action = drop, 521 and close (counted as verdict drop).
Finding pregreet_hit(const PregreetTest& test, std::string_view who);
// The end of the greet wait: mxscreen_pregreet_total by verdict (pass, enforce, ignore); an
// enforced early talker gets the dialogue's 550 at every RCPT.
Finding pregreet_verdict(const PregreetTest& test);

}  // namespace mxscreen::checks
