// proxy/screening.h: what a session and `mxscreen ctl explain` (explain.h) both derive from the
// runtime and the facts about one client, so that a dry run decides exactly as a session does:
// the dialogue's policy and client (checks/dialogue.h), the verdict cache's TTLs, tests and key,
// and the plan of DNS lookups for the names the client gives.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checks/dialogue.h"
#include "checks/pass_cache.h"
#include "protocol/address.h"
#include "proxy/client_dns.h"
#include "proxy/domain_dns.h"
#include "proxy/runtime.h"

namespace mxscreen::proxy {

checks::PassTtls pass_ttls(const CacheConfig& cache);
// The cached tests on in `runtime` (a DNSBL whose action is off decides nothing: its verdict
// need not be fresh).
checks::CachedTestSet cached_tests_enabled(const Runtime& runtime);

// The dialogue's policy, shared by the sessions of one runtime until the backend's EHLO
// (`backend_ehlo`, as last probed; empty = unknown) changes (Server::dialogue_policy).
std::shared_ptr<const checks::DialoguePolicy> make_dialogue_policy(
    const Runtime& runtime, const std::vector<std::string>& backend_ehlo);

// What the dialogue knows of one client besides the runtime.
struct DialogueFacts {
  protocol::IpAddress client;
  std::optional<uint16_t> client_port;  // unset: unknown (a dry run)
  bool fake_mx = false;                 // the fake MX listener (tempfail_rcpt)
  bool under_stress = false;            // server.stress_threshold passed: Postfix's stress limits
  bool pregreet_enforced = false;
  std::string dnsbl_enforce_reply;         // "550 5.7.1 ..." when the DNSBL test said enforce
  const ClientDnsSnapshot* dns = nullptr;  // null: no client DNS (no resolver)
  // The address the client connected to (a HELO check compares the name with it); unset in a
  // dry run.
  std::optional<protocol::IpAddress> local;
};
checks::DialogueClient make_dialogue_client(const Runtime& runtime, const DialogueFacts& facts);

// The lookups for the HELO name, the sender domain and the client's reverse name at the RCPT
// that would hand off (plan.empty(): nothing to look up). `reverse` is the PTR name, "" if none.
DomainLookupPlan domain_lookup_plan(const Runtime& runtime, const std::string& helo,
                                    const std::string& sender, const std::string& reverse);

}  // namespace mxscreen::proxy
