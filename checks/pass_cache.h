// checks/pass_cache.h: the verdict cache record, postscreen_cache_map's job (DESIGN.md
// "Greylisting and the verdict cache"). It says which pre-dialogue tests a client passed and
// until when, one expiry per test with postscreen's TTLs (postscreen_greet_ttl,
// postscreen_dnsbl_min_ttl..max_ttl, postscreen_pipelining_ttl, ...). At connect the session
// hands in the record, the tests enabled now and the time; this file says PASS OLD (nothing
// expired), re-check DNSBL (only its verdict expired) or screen (anything else expired).
// Greylisting is never part of it.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address.h"

namespace mxscreen::checks {

// "pass:<client address>" (store_keys::kPassCache): the store key of a client's record.
std::string pass_cache_key(const protocol::IpAddress& client);

// The tests a pass is remembered for, in postscreen's order.
enum class CachedTest : uint8_t { kPregreet, kDnsbl, kPipelining, kNonSmtp, kBareNewline };
inline constexpr std::size_t kCachedTests = 5;

// "pregreet", "dnsbl", "pipelining", "non_smtp", "bare_newline": record field and metric label.
std::string_view to_string(CachedTest test);

// Which tests take part (on in the config and run for this client).
using CachedTestSet = std::array<bool, kCachedTests>;

// postscreen's TTL parameters, with their defaults.
struct PassTtls {
  std::chrono::seconds greet{std::chrono::days(1)};          // postscreen_greet_ttl
  std::chrono::seconds dnsbl_min{60};                        // postscreen_dnsbl_min_ttl
  std::chrono::seconds dnsbl_max{std::chrono::hours(1)};     // postscreen_dnsbl_max_ttl
  std::chrono::seconds pipelining{std::chrono::days(30)};    // postscreen_pipelining_ttl
  std::chrono::seconds non_smtp{std::chrono::days(30)};      // postscreen_non_smtp_command_ttl
  std::chrono::seconds bare_newline{std::chrono::days(30)};  // postscreen_bare_newline_ttl
};

// One client's record: for each test, the Unix time its pass expires (0 = never passed).
struct PassRecord {
  std::array<int64_t, kCachedTests> expires{};

  int64_t latest() const;  // the last expiry (0 when nothing passed)
};

// "v2 pregreet=1767225600 dnsbl=1767139260 ..." (only the tests passed).
std::string format_pass_record(const PassRecord& record);
// nullopt for anything else, the single-TTL records of earlier versions ("1") included: an
// unreadable record is no pass, so the client is screened again (never a pass by accident).
std::optional<PassRecord> parse_pass_record(std::string_view text);

// The DNSBL verdict's lifetime: the smallest TTL of the DNS answers it rests on, clamped to
// [dnsbl_min, dnsbl_max] as postscreen does.
std::chrono::seconds dnsbl_verdict_ttl(std::chrono::seconds answer_ttl, const PassTtls& ttls);

// A client that passed `passed` now: each of those tests expires after its own TTL, the DNSBL
// test after `dnsbl_ttl` (dnsbl_verdict_ttl). A DNSWL-allowlisted client skipped the other
// tests: postscreen lets it skip them for as long as the DNSWL verdict lasts (`all_dnsbl`).
PassRecord new_pass_record(const CachedTestSet& passed, int64_t now, const PassTtls& ttls,
                           std::chrono::seconds dnsbl_ttl, bool all_dnsbl = false);

enum class CacheVerdict {
  kPassOld,       // nothing expired: straight to the backend
  kRecheckDnsbl,  // only the DNSBL verdict expired: look it up again before splicing
  kScreen,        // another test expired (or never passed): screen as a new client
};

struct CacheCheck {
  CacheVerdict verdict = CacheVerdict::kScreen;
  std::vector<CachedTest> expired;  // enabled tests whose pass expired or never was
};

// Decides for the tests `enabled` now (a test turned on since the record was written has no
// pass yet: it expired).
CacheCheck check_pass_record(const PassRecord& record, const CachedTestSet& enabled, int64_t now);

}  // namespace mxscreen::checks
