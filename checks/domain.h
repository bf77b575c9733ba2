// checks/domain.h: DNS tests of names the client gives (issue 4), answered at RCPT as with
// Postfix's smtpd_delay_reject = yes, in Postfix's restriction order: the client's reverse name
// on RHSBL lists (reject_rhsbl_reverse_client), the HELO name (reject_unknown_helo_hostname,
// reject_rhsbl_helo), the sender domain (reject_unknown_sender_domain, reject_rhsbl_sender).
// A name that provably does not exist gives a 5xx, a DNS failure a 4xx (Postfix's
// unknown_*_reject_code set to 550 and its temporary 450), with Postfix's texts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checks/dnsbl.h"

namespace mxscreen::checks {

// What DNS said about a name's A, AAAA and MX records together.
enum class NameFact {
  kExists,    // at least one record
  kNone,      // every lookup NXDOMAIN or NODATA
  kTempFail,  // no record and at least one lookup failed (timeout, SERVFAIL)
};

// Any record wins; else any failure; else none.
NameFact combine_name_answers(bool any_record, bool any_tempfail);

// An RHSBL listing: the zone that listed the name (the heaviest, when several did).
struct RhsblListing {
  std::string zone;
};

struct DomainFacts {
  std::optional<NameFact> helo;    // set when the HELO name was looked up
  std::optional<NameFact> sender;  // set when the sender domain was looked up
  std::optional<RhsblListing> reverse_listed;
  std::optional<RhsblListing> helo_listed;
  std::optional<RhsblListing> sender_listed;
};

struct DomainNames {
  std::string client_address;  // "192.0.2.1"
  std::string reverse_name;    // the client's PTR name ("" when none)
  std::string helo;            // as given
  std::string sender;          // the MAIL FROM address ("" for the null sender)
};

struct DomainReject {
  std::string reply;  // without CRLF
  std::string test;   // "reverse_rhsbl", "helo_unknown", "helo_rhsbl", "sender_unknown",
                      // "sender_rhsbl": the label on metrics and the NOQUEUE line
};

// The RCPT reply for the first test that fails, or nullopt. A listing names the list as
// `reply_map` says (dnsbl_reply_name): never the zone itself, which may hold a DQS key.
std::optional<DomainReject> domain_reject_reply(const DomainFacts& facts, const DomainNames& names,
                                                const DnsblReplyMap& reply_map);

// The HELO name to look up: lower case, no trailing dot; "" for an address literal or a name
// without a dot (those are for helo.reject_invalid / reject_non_fqdn, not for DNS).
std::string helo_lookup_name(std::string_view helo);
// The domain of a sender address, lower case; "" for the null sender, an unqualified address
// or an address literal.
std::string sender_lookup_domain(std::string_view address);

// The DNS tests of names at the RCPT that would hand off (`who` is "[ip]:port"): an "RHSBL ...
// listed by <zone>" line per listing (the zones are for the admin; the reply names them only as
// `reply_map` says), then the decision, counted as test "domain": the first failing test's reply
// for the held RCPT (kRejectRcpt, its test the NOQUEUE label), or a pass. `reject_unknown_helo`:
// helo.reject_unknown (the HELO name may have been looked up for greylist.only_if alone).
std::vector<Finding> domain_findings(const DomainFacts& facts, bool reject_unknown_helo,
                                     const DomainNames& names, const DnsblReplyMap& reply_map,
                                     std::string_view who);

}  // namespace mxscreen::checks
