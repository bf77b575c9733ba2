// The screening plan: which tests run, where the handoff happens, what is looked up.
#include "checks/plan.h"

#include <gtest/gtest.h>

#include <set>

namespace mxscreen::checks {
namespace {

PlanSettings connection_tests_only() {
  PlanSettings s;
  s.pipelining = s.non_smtp_command = s.bare_newline = Action::kOff;
  s.helo.reject_invalid = s.helo.reject_non_fqdn = false;
  s.sender_reject_non_fqdn = s.recipient_reject_non_fqdn = false;
  s.greylist = false;
  return s;
}

TEST(ChecksPlan, DefaultsRunTheDialogueAndHandOffAtRcpt) {
  Plan plan{PlanSettings{}};
  EXPECT_TRUE(plan.dialogue_needed());
  EXPECT_FALSE(plan.handoff_after_helo());
  EXPECT_TRUE(plan.on("pregreet"));
  EXPECT_TRUE(plan.on("greylist"));
  EXPECT_FALSE(plan.on("bare_newline"));
  EXPECT_TRUE(plan.needs(kNeedStore));
  EXPECT_FALSE(plan.needs(kNeedClientDns));
  EXPECT_FALSE(plan.needs(kNeedDomainDns));
}

TEST(ChecksPlan, OnlyConnectionTestsHandOffAfterTheGreet) {
  Plan plan{connection_tests_only()};
  EXPECT_FALSE(plan.dialogue_needed());
  EXPECT_EQ(plan.enabled().size(), 1u);  // pregreet
  EXPECT_EQ(plan.describe(), "test pregreet greet_end - greet.action \"off\"\nhandoff greet_end\n");
}

TEST(ChecksPlan, OnlyHeloTestsHandOffAfterEhlo) {
  auto s = connection_tests_only();
  s.helo.reject_non_fqdn = true;
  Plan plan{s};
  EXPECT_TRUE(plan.dialogue_needed());
  EXPECT_TRUE(plan.handoff_after_helo());
  // A test beyond HELO moves the handoff to the RCPT.
  s.bare_newline = Action::kIgnore;
  EXPECT_FALSE(Plan{s}.handoff_after_helo());
}

TEST(ChecksPlan, NeedsFollowTheEnabledTests) {
  auto s = connection_tests_only();
  s.dnsbl_sites = true;
  EXPECT_TRUE(Plan{s}.needs(kNeedClientDns));
  EXPECT_FALSE(Plan{s}.dialogue_needed());  // DNSBL answers at the greet's end
  s = connection_tests_only();
  s.sender_rhsbl = true;
  Plan rhsbl{s};
  EXPECT_TRUE(rhsbl.needs(kNeedDomainDns));
  EXPECT_FALSE(rhsbl.needs(kNeedClientDns));
  EXPECT_TRUE(rhsbl.dialogue_needed());
  s = connection_tests_only();
  s.client_rhsbl_reverse = true;  // the reverse name first, then its RHSBL
  EXPECT_TRUE(Plan{s}.needs(kNeedClientDns));
  EXPECT_TRUE(Plan{s}.needs(kNeedDomainDns));
}

TEST(ChecksPlan, XclientAndNameAllowlistsNeedTheClientName) {
  auto s = connection_tests_only();
  s.xclient_name = true;
  EXPECT_TRUE(Plan{s}.needs(kNeedClientDns));
  s = connection_tests_only();
  s.greylist_needs_client_name = true;  // no greylist, no need
  EXPECT_FALSE(Plan{s}.needs(kNeedClientDns));
  s.greylist = true;
  EXPECT_TRUE(Plan{s}.needs(kNeedClientDns));
}

TEST(ChecksPlan, StrikesAreTheDroppingTestsAndTheErrorLimit) {
  for (const char* outcome :
       {"pregreet", "dnsbl", "pipelining", "non_smtp", "bare_newline", "errors"}) {
    EXPECT_TRUE(Plan::is_strike(outcome)) << outcome;
  }
  for (const char* outcome : {"greylist", "helo_invalid", "hangup", "spliced", "banned"}) {
    EXPECT_FALSE(Plan::is_strike(outcome)) << outcome;
  }
}

TEST(ChecksPlan, EveryRowHasAUniqueNameAndASwitch) {
  std::set<std::string_view> names;
  for (const auto& row : Plan::tests()) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_NE(row.config_key.find('.'), std::string_view::npos) << row.name;
    EXPECT_FALSE(row.off_value.empty()) << row.name;
    EXPECT_NE(row.phase, Phase::kConnect) << row.name;
  }
}

}  // namespace
}  // namespace mxscreen::checks
