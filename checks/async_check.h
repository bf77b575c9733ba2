// checks/async_check.h: the contract of a check that needs outside facts it cannot compute
// (issue 17's "async check contract"). The check is driven round by round: next() either
// says what it needs next (DNS questions) or gives its finding; the caller answers every
// question it was asked (answer()), then calls next() again. The check owns no socket, no
// timer and no clock, like a sans-I/O parser fed bytes; the proxy's driver
// (proxy/async_check_driver.h) does the lookups on the loop, bounds them and gives up on time.
// SPF (checks/spf.h) is the first user.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mxscreen::checks {

enum class DnsRecordType : uint8_t { kA, kAAAA, kPTR, kMX, kTXT };
// kTempFail: timeout, SERVFAIL and the like (RFC 7208 2.6.6's "transient" errors), and a
// lookup the driver refused (over its in-flight limit).
enum class DnsReplyStatus : uint8_t { kOk, kNxDomain, kNoData, kTempFail };

struct DnsQuestion {
  DnsRecordType type = DnsRecordType::kA;
  std::string name;  // lower case, no trailing dot

  auto operator<=>(const DnsQuestion&) const = default;
};

struct DnsReply {
  DnsReplyStatus status = DnsReplyStatus::kTempFail;
  // A/AAAA: addresses as text; PTR, MX: names (MX sorted by preference); TXT: one string per
  // record, the record's character-strings joined without separator (RFC 7208 3.3).
  std::vector<std::string> values;
};

// What a check says after a round: either questions (answer them all, then call next()) or
// its result (then it is done; calling next() again gives the same result). SPF's result is a
// checks::SpfFinding, which the session turns into a checks::Finding.
template <typename Result>
struct Progress {
  std::vector<DnsQuestion> questions;
  std::optional<Result> finding;

  bool done() const { return finding.has_value(); }
};

template <typename Result>
class AsyncCheck {
 public:
  virtual ~AsyncCheck() = default;
  virtual Progress<Result> next() = 0;
  // The reply to a question next() asked. A reply nobody asked for is ignored.
  virtual void answer(const DnsQuestion& question, DnsReply reply) = 0;
};

}  // namespace mxscreen::checks
