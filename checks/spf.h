// checks/spf.h: RFC 7208's check_host() as an AsyncCheck (checks/async_check.h). Given the
// client address, the HELO name and the MAIL FROM address (and, for explanations, the
// receiving host's name and the time), it asks for the TXT, A, AAAA, MX and PTR answers it
// needs round by round and gives the SPF result (2.6) with the mechanism that decided it,
// the explanation of a "fail" (6.2) and, for errors, what went wrong. Limits of 4.6.4: at
// most 10 mechanisms/modifiers that look something up, at most 2 void lookups, at most 10
// MX names and 10 PTR names per mechanism. No I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "checks/async_check.h"
#include "checks/spf_record.h"
#include "protocol/address.h"

namespace mxscreen::checks {

enum class SpfResult : uint8_t {
  kNone,       // no SPF record, or no domain to check
  kNeutral,    // "?" or nothing matched
  kPass,       // "+"
  kFail,       // "-"
  kSoftFail,   // "~"
  kTempError,  // a DNS error on the way: try again later
  kPermError,  // the domain's record is broken
};

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" (RFC 7208 8, the
// Received-SPF words).
std::string_view to_string(SpfResult result);

struct SpfRequest {
  protocol::IpAddress client;  // an IPv4-mapped address is taken as IPv4 (5)
  std::string helo;
  std::string mail_from;  // the reverse-path without "<>"; "" = the null sender (HELO is checked)
  std::string receiver;   // %{r}: this host's name
  int64_t now = 0;        // %{t}: seconds since the epoch
};

// RFC 7208 4.6.4 and the guard of this implementation.
inline constexpr int kSpfLookupLimit = 10;        // mechanisms/modifiers that do DNS lookups
inline constexpr int kSpfVoidLookupLimit = 2;     // lookups answered NXDOMAIN or empty
inline constexpr std::size_t kSpfNameLimit = 10;  // MX names / PTR names per mechanism
// Every DNS question an evaluation may ask in all (the limits above keep a real one near 130:
// 10 terms with 11 lookups each, the %{p} name and the explanation); past it: permerror.
inline constexpr std::size_t kSpfQuestionLimit = 200;

struct SpfFinding {
  SpfResult result = SpfResult::kNone;
  std::string identity;     // "mailfrom" or "helo" (the null sender checks the HELO name)
  std::string domain;       // the domain checked: the SPF-pass domain when result is kPass
  std::string mechanism;    // the term that matched ("include:_spf.google.com", "-all"),
                            // "default" when nothing matched, "" for none/errors
  std::string explanation;  // kFail: the domain's exp= text, "" if none
  std::string problem;      // kPermError/kTempError/kNone: what went wrong, for the log
  int lookups = 0;          // DNS-lookup terms evaluated (4.6.4)
  int void_lookups = 0;
};

class SpfCheck final : public AsyncCheck<SpfFinding> {
 public:
  explicit SpfCheck(SpfRequest request);
  ~SpfCheck() override;

  Progress<SpfFinding> next() override;
  void answer(const DnsQuestion& question, DnsReply reply) override;

  // Questions asked so far (the driver's and the benchmark's figure).
  std::size_t questions_asked() const { return answers_.size() + asked_.size(); }

 private:
  class Evaluation;

  SpfRequest request_;
  std::map<DnsQuestion, DnsReply> answers_;
  // Records parsed in an earlier round (each round replays the evaluation): by their text.
  std::map<std::string, spf::ParsedRecord, std::less<>> parsed_;
  std::set<DnsQuestion> asked_;  // asked, not yet answered
  std::optional<SpfFinding> finding_;
};

}  // namespace mxscreen::checks
