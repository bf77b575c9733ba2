// checks/plan.h: the screening plan, postscreen's psc_new_tests in one table. From the
// settings it says which tests are on, the phase each one answers in and the facts it needs;
// the session asks the plan where the handoff happens and what to look up, never a flag of
// its own. Adding a test adds one row to kTests (plan.cc) and one field to PlanSettings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "checks/helo.h"
#include "checks/verdict.h"

namespace mxscreen::checks {

// When a test has its say (DESIGN.md "A session's life").
enum class Phase : uint8_t {
  kConnect,   // before a byte is sent: access list, limits, bans, the pass cache
  kGreetEnd,  // at the end of the greet wait: pregreet, DNSBL/DNSWL score
  kStream,    // on every line of the dialogue: pipelining, non-SMTP commands, bare newline
  kHelo,      // on EHLO/HELO
  kRcpt,      // at the RCPT that would hand off: envelope, reverse DNS, domains, greylist
};

// Facts a test needs besides the session's own bytes (a bit set).
enum Need : uint8_t {
  kNeedNothing = 0,
  kNeedClientDns = 1,  // DNSBL/DNSWL, PTR and FCrDNS of the client, started at connect
  kNeedDomainDns = 2,  // A/AAAA/MX and RHSBL of names the client gives, at RCPT
  kNeedStore = 4,      // the state store (greylist triplets, bans, the pass cache)
};

// The settings that switch tests on, as plain values (proxy/ fills them from the config).
struct PlanSettings {
  bool dnsbl_sites = false;  // dnsbl.sites not empty
  Action greet = Action::kEnforce;
  Action pipelining = Action::kEnforce;
  Action non_smtp_command = Action::kDrop;
  Action bare_newline = Action::kOff;
  HeloPolicy helo;  // the [helo] checks answered on EHLO/HELO (checks/helo.h)
  bool helo_reject_unknown = false;
  bool helo_rhsbl = false;
  bool client_reject_unknown_reverse = false;
  bool client_reject_unknown = false;
  bool client_rhsbl_reverse = false;
  bool sender_reject_non_fqdn = true;
  bool sender_reject_unknown_domain = false;
  bool sender_rhsbl = false;
  bool sender_spf = false;  // sender.spf is not "off"
  bool recipient_reject_non_fqdn = true;
  bool greylist = true;
  bool greylist_needs_client_name = false;  // allowlist names, identity keys, only_if
  bool greylist_helo_lookup = false;        // greylist.only_if has "helo": resolve it at RCPT
  bool xclient_name = false;                // handoff = xclient: NAME= is the verified name
};

struct TestRow {
  std::string_view name;        // the test's word in logs and metrics (test="...")
  std::string_view config_key;  // the setting that turns it off, "section.key"
  std::string_view off_value;   // what that setting is when off, as TOML ("\"off\"", "false")
  Phase phase;
  uint8_t needs;  // Need bits
  // A hit that ends the session (drop, or the hard error limit) counts as a strike toward a
  // ban (ban.max_retry); the outcome word is the test's name.
  bool strikes;
  bool (*on)(const PlanSettings&);
};

class Plan {
 public:
  explicit Plan(const PlanSettings& settings);

  // Every test there is, in the order the session meets them.
  static const std::vector<TestRow>& tests();

  bool on(std::string_view test) const;
  const std::vector<const TestRow*>& enabled() const { return enabled_; }
  // A test in the dialogue (stream, HELO or RCPT phase) is on: the client meets mxscreen's own
  // SMTP engine; otherwise the handoff follows the greet wait.
  bool dialogue_needed() const { return dialogue_; }
  // Only HELO tests are in the dialogue: the handoff follows EHLO instead of the first RCPT.
  bool handoff_after_helo() const { return after_helo_; }
  bool needs(Need need) const { return (needs_ & need) != 0; }
  // The session outcome `outcome` (a test's name, or "errors") is a strike.
  static bool is_strike(std::string_view outcome);
  // "test NAME PHASE NEEDS SWITCH OFF-VALUE" per enabled test, then "handoff PHASE"
  // (mxscreen --check-config --plan; the integration harness reads it too).
  std::string describe() const;

 private:
  std::vector<const TestRow*> enabled_;
  bool dialogue_ = false;
  bool after_helo_ = false;
  uint8_t needs_ = 0;
};

std::string_view to_string(Phase phase);

}  // namespace mxscreen::checks
