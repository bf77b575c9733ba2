// checks/greylist_gate.h: greylist only the suspicious (greylist.only_if, issue 18). From facts
// mxscreen already has before the RCPT it says whether this client is greylisted at all:
// a client with none of the listed suspicious facts (a forward-confirmed, non-generic reverse
// name, no DNSBL score, a HELO name that resolves, an SPF pass) delivers at once. Every
// decision names the facts that made it, for the GREYLIST line. Unknown facts (a DNS failure,
// a lookup that never ran) count as suspicious: the gate only ever spares a client whose facts
// are known and clean.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "checks/domain.h"
#include "protocol/address.h"

namespace mxscreen::checks {

enum class GateFact : uint8_t {
  kNoFcrdns = 1,    // "no_fcrdns": no PTR, or its name does not lead back (FCrDNS)
  kDynamicPtr = 2,  // "dynamic_ptr": the PTR name looks generic (reverse_name_looks_dynamic)
  kDnsbl = 4,       // "dnsbl": the DNSBL/DNSWL score is above 0
  kHelo = 8,        // "helo": the HELO is an address literal or a name that does not resolve
  kSpf = 16,        // "spf": SPF gave fail, softfail, none, temperror or permerror
};
using GateFacts = uint8_t;  // a set of GateFact bits
constexpr GateFacts bit(GateFact fact) { return static_cast<GateFacts>(fact); }

// The names above, in that order.
inline constexpr std::string_view kGateFactNames[] = {"no_fcrdns", "dynamic_ptr", "dnsbl", "helo",
                                                      "spf"};
std::optional<GateFact> parse_gate_fact(std::string_view name);

struct ClientFacts {
  protocol::IpAddress client;
  bool fcrdns = false;   // the reverse name was forward-confirmed
  std::string ptr_name;  // the (first) PTR name, "" when there is none
  int dnsbl_rank = 0;
  std::string helo;                     // as given
  std::optional<NameFact> helo_exists;  // A/AAAA/MX of the HELO name; nullopt: not looked up
  // RFC 7208's result word ("pass", "fail", "softfail", "neutral", "none", "temperror",
  // "permerror"), "" when SPF was not evaluated.
  std::string spf;
};

struct GateDecision {
  bool greylist = true;
  std::string suspicious;  // the listed facts that hold, "no_fcrdns,dnsbl"; "" when clean
  std::string facts;       // every fact: "ptr=mail.example.org fcrdns=yes dnsbl=0 helo=ok spf=pass"
};

// The gate's answer for `facts` with the suspicious facts `only_if` (GateFact bits; 0 means
// the gate is off and every client is greylisted).
GateDecision greylist_gate(const ClientFacts& facts, GateFacts only_if);

}  // namespace mxscreen::checks
