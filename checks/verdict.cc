// checks/verdict.cc: action names and the hit-to-verdict mapping shared by all tests.
#include "checks/verdict.h"

namespace mxscreen::checks {

std::string_view to_string(Action action) {
  for (const auto& n : kActionNames) {
    if (n.value == action) return n.name;
  }
  return "off";
}

Verdict verdict_for(Action action, bool hit, std::string reason) {
  if (!hit || action == Action::kOff) return Verdict::pass();
  switch (action) {
    case Action::kIgnore:
      return {Outcome::kIgnore, std::move(reason)};
    case Action::kEnforce:
      return {Outcome::kEnforce, std::move(reason)};
    case Action::kDrop:
      return {Outcome::kDrop, std::move(reason)};
    case Action::kOff:
      break;
  }
  return Verdict::pass();
}

}  // namespace mxscreen::checks
