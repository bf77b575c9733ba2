// checks/plan.cc: see plan.h. One row per test; a new test is one more row.
#include "checks/plan.h"

#include <algorithm>

namespace mxscreen::checks {
namespace {

using S = PlanSettings;

// clang-format off
const std::vector<TestRow> kTests = {
  // name            switch                           off      phase             needs                            strikes
  {"pregreet",       "greet.action",                  "\"off\"", Phase::kGreetEnd, kNeedNothing,                    true,
   [](const S& s) { return s.greet != Action::kOff; }},
  {"dnsbl",          "dnsbl.sites",                   "[]",    Phase::kGreetEnd, kNeedClientDns,                  true,
   [](const S& s) { return s.dnsbl_sites; }},
  {"pipelining",     "smtp.pipelining",               "\"off\"", Phase::kStream,   kNeedNothing,                    true,
   [](const S& s) { return s.pipelining != Action::kOff; }},
  {"non_smtp",       "smtp.non_smtp_command",         "\"off\"", Phase::kStream,   kNeedNothing,                    true,
   [](const S& s) { return s.non_smtp_command != Action::kOff; }},
  {"bare_newline",   "smtp.bare_newline",             "\"off\"", Phase::kStream,   kNeedNothing,                    true,
   [](const S& s) { return s.bare_newline != Action::kOff; }},
  {"helo_invalid",   "helo.reject_invalid",           "false", Phase::kHelo,     kNeedNothing,                    false,
   [](const S& s) { return s.helo.reject_invalid; }},
  {"helo_non_fqdn",  "helo.reject_non_fqdn",          "false", Phase::kHelo,     kNeedNothing,                    false,
   [](const S& s) { return s.helo.reject_non_fqdn; }},
  {"helo_own_name",  "helo.reject_own_name",          "false", Phase::kHelo,     kNeedNothing,                    false,
   [](const S& s) { return s.helo.reject_own_name; }},
  {"helo_unknown",   "helo.reject_unknown",           "false", Phase::kRcpt,     kNeedDomainDns,                  false,
   [](const S& s) { return s.helo_reject_unknown; }},
  {"helo_rhsbl",     "helo.rhsbl",                    "[]",    Phase::kRcpt,     kNeedDomainDns,                  false,
   [](const S& s) { return s.helo_rhsbl; }},
  {"reverse",        "client.reject_unknown_reverse", "false", Phase::kRcpt,     kNeedClientDns,                  false,
   [](const S& s) { return s.client_reject_unknown_reverse; }},
  {"fcrdns",         "client.reject_unknown",         "false", Phase::kRcpt,     kNeedClientDns,                  false,
   [](const S& s) { return s.client_reject_unknown; }},
  {"reverse_rhsbl",  "client.rhsbl_reverse",          "[]",    Phase::kRcpt,     kNeedClientDns | kNeedDomainDns, false,
   [](const S& s) { return s.client_rhsbl_reverse; }},
  {"sender_non_fqdn", "sender.reject_non_fqdn",       "false", Phase::kRcpt,     kNeedNothing,                    false,
   [](const S& s) { return s.sender_reject_non_fqdn; }},
  {"sender_unknown", "sender.reject_unknown_domain",  "false", Phase::kRcpt,     kNeedDomainDns,                  false,
   [](const S& s) { return s.sender_reject_unknown_domain; }},
  {"sender_rhsbl",   "sender.rhsbl",                  "[]",    Phase::kRcpt,     kNeedDomainDns,                  false,
   [](const S& s) { return s.sender_rhsbl; }},
  {"spf",            "sender.spf",                    "\"off\"", Phase::kRcpt,   kNeedDomainDns,                  false,
   [](const S& s) { return s.sender_spf; }},
  {"recipient_non_fqdn", "recipient.reject_non_fqdn", "false", Phase::kRcpt,     kNeedNothing,                    false,
   [](const S& s) { return s.recipient_reject_non_fqdn; }},
  {"greylist",       "greylist.enabled",              "false", Phase::kRcpt,     kNeedStore,                      false,
   [](const S& s) { return s.greylist; }},
};
// clang-format on

bool in_dialogue(Phase phase) {
  return phase == Phase::kStream || phase == Phase::kHelo || phase == Phase::kRcpt;
}

}  // namespace

Plan::Plan(const PlanSettings& settings) {
  bool helo = false, beyond_helo = false;
  for (const TestRow& row : kTests) {
    if (!row.on(settings)) continue;
    enabled_.push_back(&row);
    needs_ |= row.needs;
    helo = helo || row.phase == Phase::kHelo;
    beyond_helo = beyond_helo || row.phase == Phase::kStream || row.phase == Phase::kRcpt;
  }
  dialogue_ = std::any_of(enabled_.begin(), enabled_.end(),
                          [](const TestRow* row) { return in_dialogue(row->phase); });
  after_helo_ = helo && !beyond_helo;
  // Facts that are not a test's: a greylist client allowlist that matches verified names, and
  // XCLIENT's NAME= (without it Postfix sees every client as unknown[addr], so its
  // reject_unknown_client_hostname and name-based rules would misfire).
  if ((settings.greylist && settings.greylist_needs_client_name) || settings.xclient_name) {
    needs_ |= kNeedClientDns;
  }
  if (settings.greylist && settings.greylist_helo_lookup) needs_ |= kNeedDomainDns;
}

const std::vector<TestRow>& Plan::tests() { return kTests; }

bool Plan::on(std::string_view test) const {
  return std::any_of(enabled_.begin(), enabled_.end(),
                     [test](const TestRow* row) { return row->name == test; });
}

bool Plan::is_strike(std::string_view outcome) {
  if (outcome == "errors") return true;  // errors.hard_limit reached
  return std::any_of(kTests.begin(), kTests.end(),
                     [outcome](const TestRow& row) { return row.strikes && row.name == outcome; });
}

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::kConnect:
      return "connect";
    case Phase::kGreetEnd:
      return "greet_end";
    case Phase::kStream:
      return "stream";
    case Phase::kHelo:
      return "helo";
    case Phase::kRcpt:
      return "rcpt";
  }
  return "?";
}

std::string Plan::describe() const {
  std::string out;
  for (const TestRow* row : enabled_) {
    std::string needs;
    if (row->needs & kNeedClientDns) needs += needs.empty() ? "client_dns" : ",client_dns";
    if (row->needs & kNeedDomainDns) needs += needs.empty() ? "domain_dns" : ",domain_dns";
    if (row->needs & kNeedStore) needs += needs.empty() ? "store" : ",store";
    out += "test " + std::string(row->name) + " " + std::string(to_string(row->phase)) + " " +
           (needs.empty() ? "-" : needs) + " " + std::string(row->config_key) + " " +
           std::string(row->off_value) + "\n";
  }
  out += std::string("handoff ") +
         (!dialogue_    ? "greet_end"
          : after_helo_ ? "helo"
                        : "rcpt") +
         "\n";
  return out;
}

}  // namespace mxscreen::checks
