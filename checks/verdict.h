// checks/verdict.h: the vocabulary every screening test shares: the configured action of a
// test (postscreen's ignore / enforce / drop, plus off) and the verdict a test gives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxscreen::checks {

// Per-test action, postscreen's words (postscreen_greet_action and friends).
enum class Action : uint8_t {
  kOff,      // the test does not run and costs nothing
  kIgnore,   // log the hit and carry on
  kEnforce,  // carry on, but answer every RCPT with 550 5.7.1
  kDrop,     // 521 5.7.1 and close now
};

// A config word and the value it names (the config reader's tables are of these).
template <typename E>
struct NamedValue {
  std::string_view name;
  E value;
};

// The one table of action names: the config reader and the log lines both use it.
inline constexpr NamedValue<Action> kActionNames[] = {{"off", Action::kOff},
                                                      {"ignore", Action::kIgnore},
                                                      {"enforce", Action::kEnforce},
                                                      {"drop", Action::kDrop}};
std::string_view to_string(Action action);

enum class Outcome : uint8_t {
  kPass,      // the test has nothing against the client
  kIgnore,    // hit, but the action is ignore: log only
  kEnforce,   // hit: reject at RCPT
  kDrop,      // hit: 521 and close
  kTempfail,  // 4xx and close (limits, backend trouble)
  kReject,    // 5xx and close (deny list)
};

struct Verdict {
  Outcome outcome = Outcome::kPass;
  std::string reason;  // a short text for the log, already free of client bytes

  static Verdict pass() { return {}; }
  bool passed() const { return outcome == Outcome::kPass; }
};

// The verdict a hit yields under `action` (kOff and no hit give kPass).
Verdict verdict_for(Action action, bool hit, std::string reason);

}  // namespace mxscreen::checks
