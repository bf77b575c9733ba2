// proxy/greylisting.h: one triplet's greylisting against the state store, shared by the
// pre-handoff RCPT (session_store.cc) and the policy service (policy_server.cc), so that both
// sides read and write the same key and record: a triplet is recorded once, whichever side
// sees it first. The allowlist files, the auto-allowlisted client (postgrey's
// --auto-whitelist-clients), then checks::greylist's decision; a pass is counted for the client
// at most once an hour, as postgrey counts. Records and counts are written with the store's
// put_if, so sessions and policy requests racing on one triplet (workers, hosts) record it once.
// The triplet's client part is an identity (checks/greylist_identity.h: SPF-pass domain,
// organisational domain of the verified name, network) when greylist.identity_keys is on, and
// greylist.only_if (checks/greylist_gate.h) spares clients whose facts are clean.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "checks/greylist.h"
#include "checks/greylist_gate.h"
#include "checks/spf.h"
#include "protocol/address.h"
#include "proxy/config.h"
#include "proxy/store.h"

namespace mxscreen::proxy {

struct Runtime;

checks::GreylistPolicy greylist_policy(const GreylistConfig& config);

// mxscreen_greylist_delay_seconds: first try to pass, 1 minute .. 2 days (retry_window).
inline constexpr std::array<double, 13> kGreylistDelayBuckets = {
    60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600};

struct GreylistQuery {
  protocol::IpAddress client;
  // The forward-confirmed client name, "" when there is none (then the triplet's record says
  // fcrdns no: the never-retried count is split by it).
  std::string verified_name;
  std::string sender;
  std::string recipient;
  // The sender's SPF finding (sender.spf; kNone when SPF is off or had nothing to say) and the
  // domain it is about: the SPF-pass domain when spf_result is kPass (issue 18's
  // identity-keyed triplet uses it as a key, never as a bypass).
  checks::SpfResult spf_result = checks::SpfResult::kNone;
  std::string spf_domain;
  // What greylist.only_if scores (checks/greylist_gate.h); unset = every fact unknown.
  std::optional<checks::ClientFacts> facts;
};

// The answer for one triplet (checks/greylist.h).
using checks::GreylistAnswer;

// Greylists `query`. `done` runs on the loop thread, at once (allowlisted, memory and LMDB
// stores) or later (Redis); the caller guards its own lifetime. A store that fails answers
// kStoreUnavailable: the caller fails open.
void greylist_triplet(Store& store, const Runtime& runtime, const GreylistQuery& query,
                      std::function<void(GreylistAnswer)> done);

}  // namespace mxscreen::proxy
