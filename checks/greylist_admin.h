// checks/greylist_admin.h: what the admin and the never-retried sweep read from greylist state
// (issue 19), as pure functions: a triplet read back from its key, the listing filters, a
// triplet's state, the sweep's "never retried within retry_window" test and claim, the record
// `ctl greylist pass` writes, and the postgreyreport-like ranking of never-retried senders.
// The readable triplet is the key itself (checks/greylist.h greylist_key): nothing is stored
// twice. An address longer than kGreylistKeyPartLimit is in the key as its first bytes, '~' and
// a hash; it is listed that way, and found by the full address, not by its domain.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checks/greylist.h"

namespace mxscreen::checks {

// The parts of "gl:<network>/<n>:<sender>:<recipient>", sender and recipient as the key holds
// them (escaped, maybe hashed).
struct GreylistTriplet {
  std::string network;  // "192.0.2.0/24", "2001:db8:1:2::/64"; an identity key's
                        // "spf=example.org" or "ptr=example.net" (greylist_identity.h)
  std::string sender;   // "" = the null sender
  std::string recipient;
};
std::optional<GreylistTriplet> parse_greylist_key(std::string_view key);

// `ctl greylist list --sender S --recipient R`: nullopt = any; "@domain" = any address at the
// domain; "<>" = the null sender; anything else = that address, normalised as greylisting does
// (tags stripped, lower case).
struct GreylistFilter {
  std::optional<std::string> sender;  // a key part, or "@domain" (escaped, lower case)
  std::optional<std::string> recipient;
};
GreylistFilter make_greylist_filter(const std::optional<std::string>& sender,
                                    const std::optional<std::string>& recipient,
                                    const GreylistPolicy& policy);
bool greylist_filter_matches(const GreylistFilter& filter, const GreylistTriplet& triplet);

enum class TripletState : uint8_t {
  kPending,       // not passed yet, within retry_window: a retry after the delay passes
  kPassed,        // passed (or passed by the admin): every retry passes until max_age
  kNeverRetried,  // not passed and retry_window is over: the next try starts over
};
std::string_view to_string(TripletState state);  // "pending", "passed", "never-retried"
TripletState triplet_state(const GreylistRecord& record, int64_t now, const GreylistPolicy& policy);

// The sweep's claim: for a triplet that never retried within retry_window and was not counted
// yet, the record to write in its place (counted) and for how long (what its TTL had left);
// nullopt for every other record. Whoever writes it (put_if) counts it: once over workers and
// hosts.
struct NeverRetriedClaim {
  GreylistRecord record;
  std::string new_record;
  std::chrono::seconds ttl{1};
};
std::optional<NeverRetriedClaim> claim_never_retried(std::string_view stored, int64_t now,
                                                     const GreylistPolicy& policy);

// `ctl greylist pass`: the triplet passes from now on, as if it had retried (kept for max_age);
// first sight and the FCrDNS fact are kept from `stored` when there is one.
std::string admin_pass_record(std::optional<std::string_view> stored, int64_t now);

// Never-retried counts per sender for `ctl greylist report`: "glnr:y:<sender>" (FCrDNS client)
// and "glnr:n:<sender>", incremented by the sweep, kept kNeverRetriedReportTtl from the first.
inline constexpr std::chrono::seconds kNeverRetriedReportTtl = std::chrono::days(7);
std::string never_retried_report_key(bool fcrdns, std::string_view sender);

struct NeverRetriedSender {
  std::string sender;  // as the key holds it; "" = the null sender
  int64_t total = 0;
  int64_t fcrdns = 0;  // of which from clients with forward-confirmed rDNS
};
// The report's rows from the counter items (key, value): at most `limit`, most never-retried
// first (FCrDNS count, then the sender, break ties). Unreadable items are skipped.
std::vector<NeverRetriedSender> rank_never_retried(
    const std::vector<std::pair<std::string, std::string>>& counters, std::size_t limit);

}  // namespace mxscreen::checks
