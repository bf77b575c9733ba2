// tests/checks/verdict_test.cc: the shared vocabulary (checks/verdict.h): the action names
// and the verdict a hit gives under each action.
#include "checks/verdict.h"

#include <gtest/gtest.h>

#include <set>

namespace mxscreen::checks {
namespace {

TEST(ChecksVerdict, ActionNamesArePostscreensWords) {
  EXPECT_EQ(to_string(Action::kOff), "off");
  EXPECT_EQ(to_string(Action::kIgnore), "ignore");
  EXPECT_EQ(to_string(Action::kEnforce), "enforce");
  EXPECT_EQ(to_string(Action::kDrop), "drop");
  // The table names every action once, and to_string reads it back.
  std::set<std::string_view> names;
  std::set<Action> values;
  for (const auto& n : kActionNames) {
    names.insert(n.name);
    values.insert(n.value);
    EXPECT_EQ(to_string(n.value), n.name);
  }
  EXPECT_EQ(names.size(), std::size(kActionNames));
  EXPECT_EQ(values.size(), 4u);
}

TEST(ChecksVerdict, NoHitPassesUnderEveryAction) {
  for (Action a : {Action::kOff, Action::kIgnore, Action::kEnforce, Action::kDrop}) {
    Verdict v = verdict_for(a, false, "bare newline");
    EXPECT_TRUE(v.passed()) << to_string(a);
    EXPECT_EQ(v.outcome, Outcome::kPass) << to_string(a);
    EXPECT_TRUE(v.reason.empty()) << to_string(a);
  }
}

TEST(ChecksVerdict, HitGivesTheActionsOutcomeAndKeepsTheReason) {
  Verdict off = verdict_for(Action::kOff, true, "bare newline");
  EXPECT_TRUE(off.passed());  // the test does not run
  EXPECT_TRUE(off.reason.empty());
  Verdict ignore = verdict_for(Action::kIgnore, true, "bare newline");
  EXPECT_EQ(ignore.outcome, Outcome::kIgnore);
  EXPECT_FALSE(ignore.passed());
  EXPECT_EQ(ignore.reason, "bare newline");
  Verdict enforce = verdict_for(Action::kEnforce, true, "command pipelining");
  EXPECT_EQ(enforce.outcome, Outcome::kEnforce);
  EXPECT_EQ(enforce.reason, "command pipelining");
  Verdict drop = verdict_for(Action::kDrop, true, "non-SMTP command");
  EXPECT_EQ(drop.outcome, Outcome::kDrop);
  EXPECT_EQ(drop.reason, "non-SMTP command");
}

TEST(ChecksVerdict, PassIsThePass) {
  Verdict v = Verdict::pass();
  EXPECT_TRUE(v.passed());
  EXPECT_TRUE(v.reason.empty());
  Verdict tempfail{Outcome::kTempfail, "busy"};
  EXPECT_FALSE(tempfail.passed());
}

}  // namespace
}  // namespace mxscreen::checks
