// checks/pass_cache.cc: see pass_cache.h.
#include "checks/pass_cache.h"

#include <algorithm>
#include <charconv>

#include "checks/store_keys.h"

namespace mxscreen::checks {
namespace {

constexpr std::string_view kVersion = "v2";
constexpr std::array<CachedTest, kCachedTests> kAll = {
    CachedTest::kPregreet, CachedTest::kDnsbl, CachedTest::kPipelining, CachedTest::kNonSmtp,
    CachedTest::kBareNewline};

std::size_t index(CachedTest test) { return static_cast<std::size_t>(test); }

}  // namespace

std::string pass_cache_key(const protocol::IpAddress& client) {
  return store_keys::make(store_keys::kPassCache, client.to_string());
}

std::string_view to_string(CachedTest test) {
  switch (test) {
    case CachedTest::kPregreet:
      return "pregreet";
    case CachedTest::kDnsbl:
      return "dnsbl";
    case CachedTest::kPipelining:
      return "pipelining";
    case CachedTest::kNonSmtp:
      return "non_smtp";
    case CachedTest::kBareNewline:
      return "bare_newline";
  }
  return "?";
}

int64_t PassRecord::latest() const { return *std::max_element(expires.begin(), expires.end()); }

std::string format_pass_record(const PassRecord& record) {
  std::string out(kVersion);
  for (CachedTest test : kAll) {
    int64_t at = record.expires[index(test)];
    if (at <= 0) continue;
    out += ' ';
    out += to_string(test);
    out += '=';
    out += std::to_string(at);
  }
  return out;
}

std::optional<PassRecord> parse_pass_record(std::string_view text) {
  if (text.substr(0, kVersion.size()) != kVersion) return std::nullopt;
  text.remove_prefix(kVersion.size());
  PassRecord record;
  while (!text.empty()) {
    if (text.front() != ' ') return std::nullopt;
    text.remove_prefix(1);
    std::size_t end = std::min(text.find(' '), text.size());
    std::string_view field = text.substr(0, end);
    text.remove_prefix(end);
    std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    auto name = field.substr(0, eq);
    auto value = field.substr(eq + 1);
    auto test = std::find_if(kAll.begin(), kAll.end(),
                             [name](CachedTest t) { return to_string(t) == name; });
    int64_t at = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), at);
    if (ec != std::errc() || ptr != value.data() + value.size() || at <= 0) return std::nullopt;
    // A field of a later version is skipped, not an error: its other fields still count.
    if (test != kAll.end()) record.expires[index(*test)] = at;
  }
  return record;
}

std::chrono::seconds dnsbl_verdict_ttl(std::chrono::seconds answer_ttl, const PassTtls& ttls) {
  return std::clamp(answer_ttl, ttls.dnsbl_min, std::max(ttls.dnsbl_min, ttls.dnsbl_max));
}

PassRecord new_pass_record(const CachedTestSet& passed, int64_t now, const PassTtls& ttls,
                           std::chrono::seconds dnsbl_ttl, bool all_dnsbl) {
  const std::array<std::chrono::seconds, kCachedTests> ttl = {
      ttls.greet, dnsbl_ttl, ttls.pipelining, ttls.non_smtp, ttls.bare_newline};
  PassRecord record;
  for (CachedTest test : kAll) {
    std::size_t i = index(test);
    if (!passed[i]) continue;
    auto lifetime = all_dnsbl ? dnsbl_ttl : ttl[i];
    if (lifetime.count() > 0) record.expires[i] = now + lifetime.count();
  }
  return record;
}

CacheCheck check_pass_record(const PassRecord& record, const CachedTestSet& enabled, int64_t now) {
  CacheCheck check;
  for (CachedTest test : kAll) {
    if (enabled[index(test)] && record.expires[index(test)] <= now) check.expired.push_back(test);
  }
  if (check.expired.empty()) {
    check.verdict = CacheVerdict::kPassOld;
  } else if (check.expired.size() == 1 && check.expired.front() == CachedTest::kDnsbl) {
    check.verdict = CacheVerdict::kRecheckDnsbl;
  } else {
    check.verdict = CacheVerdict::kScreen;
  }
  return check;
}

}  // namespace mxscreen::checks
