// checks/spf_record.h: the SPF record language of RFC 7208: selecting the record among a
// name's TXT strings (4.5), parsing it into mechanisms and modifiers with every syntax check
// of section 12's ABNF (a syntax error anywhere is a permerror, 4.6), and the macro language
// (7): its syntax, its expansion and the domain name a lookup is made of. Pure: the
// evaluation in checks/spf.cc gives the facts (the validated PTR name included).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address.h"

namespace mxscreen::checks::spf {

enum class Qualifier : char { kPass = '+', kFail = '-', kSoftFail = '~', kNeutral = '?' };
enum class MechanismKind : uint8_t { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct Mechanism {
  Qualifier qualifier = Qualifier::kPass;
  MechanismKind kind = MechanismKind::kAll;
  std::string domain_spec;  // macro-string; "" = the current <domain> (a, mx, ptr)
  protocol::Cidr network;   // ip4, ip6
  int cidr4 = 32;           // a, mx: ip4-cidr-length
  int cidr6 = 128;          // a, mx: ip6-cidr-length
  std::string text;         // the term as written (for the log's mechanism=)

  // include, a, mx, ptr and exists count toward the 10-lookup limit (4.6.4).
  bool does_lookup() const;
};

struct Record {
  std::vector<Mechanism> mechanisms;
  std::optional<std::string> redirect;  // domain-spec
  std::optional<std::string> exp;       // domain-spec
};

struct ParsedRecord {
  std::optional<Record> record;  // nullopt: syntax error (permerror)
  std::string error;             // what was wrong, for the log
};

// "v=spf1" (any case) followed by a space or the end (4.5).
bool is_spf_record(std::string_view txt);
// Parses a selected record (starting with its "v=spf1").
ParsedRecord parse_record(std::string_view text);

// The facts a macro expands to (7.2). The client address is already IPv4 for a mapped
// address (5, 9).
struct MacroFacts {
  std::string sender;         // s: <sender>, local-part@domain
  std::string local_part;     // l
  std::string sender_domain;  // o
  std::string domain;         // d: the current <domain>
  protocol::IpAddress ip;     // i, c, v
  std::string helo;           // h
  std::string receiver;       // r: the receiving host's name (exp only)
  int64_t now = 0;            // t: seconds since the epoch (exp only)
  std::string validated_ptr;  // p: "unknown" when none validates
};

// macro-string syntax (7.1); `explanation` allows the exp-only letters c, r and t.
bool valid_macro_string(std::string_view text, bool explanation);
// domain-spec = macro-string domain-end (7.1): ends in a macro-expand or "." toplabel ["."].
bool valid_domain_spec(std::string_view text);
// Whether the string uses the p macro (so that the caller first finds the validated name).
bool uses_ptr_macro(std::string_view text);
// Expands a syntactically valid macro-string; nullopt if it is not valid.
std::optional<std::string> expand_macros(std::string_view text, const MacroFacts& facts,
                                         bool explanation);
// A domain-spec's expansion as a lookup name: the trailing dot dropped, lower case, left
// labels removed until at most 253 characters (7.3). nullopt when no DNS query can be made of
// it (an empty label or one over 63 characters): the mechanism then does not match.
std::optional<std::string> lookup_name(std::string_view expanded);
// The <domain> of 4.3: a multi-label name with labels of 1..63 characters (trailing dot
// dropped, lower case), else nullopt (check_host() gives "none").
std::optional<std::string> initial_domain(std::string_view domain);

}  // namespace mxscreen::checks::spf
