// checks/verdict.cc: action names and the hit-to-verdict mapping shared by all tests.
#include "checks/verdict.h"

namespace mxscreen::checks {

std::optional<Action> parse_action(std::string_view text) {
  if (text == "off") return Action::kOff;
  if (text == "ignore") return Action::kIgnore;
  if (text == "enforce") return Action::kEnforce;
  if (text == "drop") return Action::kDrop;
  return std::nullopt;
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kOff:
      return "off";
    case Action::kIgnore:
      return "ignore";
    case Action::kEnforce:
      return "enforce";
    case Action::kDrop:
      return "drop";
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
