// checks/dnsbl.h: DNSBL/DNSWL and RHSBL scoring, postscreen_dnsbl.c's decision. Sites use
// postscreen_dnsbl_sites syntax (zone[=filter][*weight]); the session hands in the A answers
// of each site's query, this file says listed / not listed / zone error and sums the weights.
#pragma once

#include <array>
#include <bitset>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "checks/finding.h"
#include "checks/verdict.h"
#include "protocol/address.h"

namespace mxscreen::checks {

// An IPv4 reply pattern such as 127.0.0.[2..11] or 127.0.[0..255].[1;3]: one set of allowed
// values per octet (Postfix's ip_match syntax).
struct DnsblFilter {
  std::array<std::bitset<256>, 4> octets;
  bool matches(const protocol::IpAddress& answer) const;
};

struct DnsblSite {
  std::string zone;                   // lower case, no trailing dot
  std::optional<DnsblFilter> filter;  // none: any non-error answer is a listing
  int weight = 1;                     // negative = allowlist (DNSWL)
  std::string text;                   // as configured, for logs
};

// "zen.spamhaus.org", "zen.spamhaus.org=127.0.0.[2..11]*3",
// "list.dnswl.org=127.0.[0..255].[1..3]*-5". On failure returns nullopt and, when `error` is given,
// a message naming what is wrong.
std::optional<DnsblSite> parse_dnsbl_site(std::string_view text, std::string* error);

// Every site of a list, or nullopt with one message per bad entry in `errors`.
std::optional<std::vector<DnsblSite>> parse_dnsbl_sites(const std::vector<std::string>& texts,
                                                        std::vector<std::string>* errors);

// postscreen_dnsbl_reply_map: the name a rejected client is told in place of a list's zone
// ("... blocked using <name>"), keyed by zone (lower case, no trailing dot). A zone name may hold
// a secret (a Spamhaus DQS key is part of it), so a zone the map does not name is never shown to
// a client: it reads kUnnamedDnsbl. The zone itself stays in the logs and metrics.
using DnsblReplyMap = std::map<std::string, std::string, std::less<>>;
inline constexpr std::string_view kUnnamedDnsbl = "a DNS blocklist";
std::string dnsbl_reply_name(std::string_view zone, const DnsblReplyMap& reply_map);

// "2.0.0.127.zen.test" for 127.0.0.2; IPv6 as 32 reversed nibbles (RFC 5782 section 2.4).
std::string dnsbl_query_name(const protocol::IpAddress& client, std::string_view zone);
// "<domain>.<zone>" for domain lists (RHSBL, RFC 5782 section 3). Empty when the domain is
// empty or the name would exceed 253 characters (such a name cannot be listed).
std::string rhsbl_query_name(std::string_view domain, std::string_view zone);

// Whether `answer` fits the site's filter (no filter: every answer fits). Does not look at
// error answers: see classify_dnsbl_answer().
bool filter_matches(const DnsblSite& site, const protocol::IpAddress& answer);

// A zone's own error codes are never a listing: 127.255.255.0/24 (Spamhaus: 252 typing
// error, 254 public/open resolver, 255 excessive queries), 127.0.0.1 (never a valid listing,
// RFC 5782 section 5), 127.0.0.255 (dnswl.org: query refused) and anything outside
// 127.0.0.0/8 (RFC 5782 section 2.1; wildcard answers of a dead or hijacked zone).
bool is_dnsbl_error_answer(const protocol::IpAddress& answer);

enum class DnsblOutcome { kNotListed, kListed, kZoneError };

std::string_view to_string(DnsblOutcome outcome);

struct DnsblHit {
  std::string zone;
  std::string site;  // the site as configured
  int weight = 0;
  std::vector<protocol::IpAddress> answers;
};

// One client's score: every site is added once, with the answers to its query (empty for
// NXDOMAIN/NODATA/timeout: "not listed", as postscreen counts a missing answer).
class DnsblScore {
 public:
  // A site counts once however many answers match (postscreen). If any answer is an error
  // code the whole reply is kZoneError and counts nothing.
  DnsblOutcome add(const DnsblSite& site, std::span<const protocol::IpAddress> answers);

  int rank() const { return total_; }
  int total() const { return total_; }
  const std::vector<DnsblHit>& hits() const { return hits_; }
  int zone_errors() const { return zone_errors_; }

 private:
  int total_ = 0;
  int zone_errors_ = 0;
  std::vector<DnsblHit> hits_;
};

// The score at the end of the greet wait (postscreen_dnsbl_threshold,
// postscreen_dnsbl_allowlist_threshold, postscreen_dnsbl_action): allowlisted (DNSWL: the other
// tests are skipped), a pass, or a listing that `action` acts on (never with action off).
enum class DnsblDecision { kAllowlisted, kPass, kListed };
DnsblDecision dnsbl_decision(int rank, int threshold, int allowlist_threshold, Action action);

// The text after "521 5.7.1 " / "550 5.7.1 " for a client the lists rank too high: the admin's
// name for the heaviest listing zone (dnsbl_reply_name, never the zone itself), then the list's
// TXT (`reply_text`, dnsbl.reply_text) unless it names one of the zones (a DQS key would leak).
std::string dnsbl_reject_text(const protocol::IpAddress& client, const std::vector<DnsblHit>& hits,
                              std::string_view reply_text, const DnsblReplyMap& reply_map);

// What a listed client (DnsblDecision::kListed) is told under `action`: drop gives the 521 that
// closes the session now (`drop`), enforce the 550 every later RCPT gets (`enforce`), ignore
// nothing. `text` is dnsbl_reject_text's.
struct DnsblReplies {
  std::string drop;     // "521 5.7.1 text", or empty
  std::string enforce;  // "550 5.7.1 text", or empty
};
DnsblReplies dnsbl_replies(Action action, std::string_view text);

// The DNSBL/DNSWL score at the end of the greet wait (`who` is "[ip]:port", `rank` the sum of
// the weights of `hits`, `reply_text` the list's TXT): a "DNSBL rank n for ..." line when the
// rank is not 0, then the decision: kAllowlist (a DNSWL pass: the rest is skipped), a pass, or
// the action's finding (drop: 521 and close; enforce: 550 at every RCPT; ignore: counted only).
std::vector<Finding> dnsbl_findings(const protocol::IpAddress& client, std::string_view who,
                                    int rank, const std::vector<DnsblHit>& hits,
                                    std::string_view reply_text, int threshold,
                                    int allowlist_threshold, Action action,
                                    const DnsblReplyMap& reply_map);

}  // namespace mxscreen::checks
