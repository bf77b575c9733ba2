// proxy/runtime.h: what a session is screened with, built from the config once per start
// and once per SIGHUP: the config itself, the access list, the expanded banner, the screening
// plan, the TLS context, the parsed DNSBL/RHSBL lists and the greylist allowlists. Immutable
// once built; a reload builds a new one and live sessions keep the one they started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "checks/access.h"
#include "checks/dnsbl.h"
#include "checks/greylist_allowlist.h"
#include "checks/greylist_gate.h"
#include "checks/plan.h"
#include "checks/spam_trap.h"
#include "proxy/config.h"
#include "proxy/tls.h"

namespace mxscreen::proxy {

struct Runtime {
  std::shared_ptr<const Config> config;
  checks::AccessList access;
  std::string banner;  // greet.banner with $hostname expanded
  // Which tests are on, when each answers and what it needs; where the handoff happens
  // (DESIGN.md step 5) follows from it.
  checks::Plan plan{checks::PlanSettings{}};
  std::shared_ptr<TlsContext> tls;  // nullptr: no STARTTLS
  // dnsbl.sites parsed; lookups for a client start at connect when the plan needs client DNS.
  std::shared_ptr<const std::vector<checks::DnsblSite>> dnsbl_sites;
  // RHSBL lists (same syntax), asked at RCPT with the other domain tests (domain_dns.h).
  std::shared_ptr<const std::vector<checks::DnsblSite>> helo_rhsbl, sender_rhsbl, reverse_rhsbl;
  // greylist.client_allowlist_file / recipient_allowlist_file (empty lists when unset).
  std::shared_ptr<const checks::ClientAllowlist> greylist_clients;
  std::shared_ptr<const checks::RecipientAllowlist> greylist_recipients;
  // greylist.only_if as GateFact bits (0 = greylist every client) and greylist.trap_recipients.
  checks::GateFacts greylist_only_if = 0;
  checks::TrapRecipients trap_recipients;
};

// Builds the runtime from a loaded config (reads access.file). On failure returns nullptr and
// fills `errors` with "file:line:col: message" lines.
std::shared_ptr<const Runtime> build_runtime(Config config, std::vector<std::string>* errors);

// Loads the config file and builds its runtime: the one path for start, --check-config and
// SIGHUP. On failure returns nullptr and fills `errors` with "file:line:col: message" lines.
// `warnings` (when given) gets "file:line:col: warning: ..." lines for what was accepted but
// deserves a look (a deprecated key).
std::shared_ptr<const Runtime> load_runtime(const std::string& path,
                                            std::vector<std::string>* errors,
                                            std::vector<std::string>* warnings = nullptr);

}  // namespace mxscreen::proxy
