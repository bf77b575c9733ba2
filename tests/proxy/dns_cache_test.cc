// tests/proxy/dns_cache_test.cc: the DNS cache with a fake clock: TTL expiry, the
// ttl_min/ttl_max clamp, negative caching, no caching of temporary failures, the entry bound.
#include "proxy/dns_cache.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = DnsCache::Clock;

DnsAnswer ok(uint32_t ttl, std::string value = "127.0.0.2") {
  return DnsAnswer{DnsStatus::kOk, {std::move(value)}, ttl};
}

DnsCacheLimits limits(std::chrono::seconds min, std::chrono::seconds max, std::size_t entries,
                      std::chrono::seconds negative = 60s) {
  return DnsCacheLimits{min, max, negative, entries};
}

TEST(DnsCache, HitUntilTtlExpires) {
  DnsCache cache(limits(1s, 3600s, 100));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "2.0.0.127.zen.test", ok(300), t0);
  auto hit = cache.get(DnsType::kA, "2.0.0.127.zen.test", t0 + 100s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->status, DnsStatus::kOk);
  EXPECT_EQ(hit->values, std::vector<std::string>{"127.0.0.2"});
  EXPECT_EQ(hit->ttl, 200u);  // time left
  EXPECT_TRUE(cache.get(DnsType::kA, "2.0.0.127.zen.test", t0 + 299s));
  EXPECT_FALSE(cache.get(DnsType::kA, "2.0.0.127.zen.test", t0 + 300s));
  EXPECT_EQ(cache.size(), 0u);  // the expired entry is gone
}

TEST(DnsCache, KeyIsTypeAndCaseFoldedName) {
  DnsCache cache(limits(1s, 3600s, 100));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "Mail.Example.ORG.", ok(60), t0);
  EXPECT_TRUE(cache.get(DnsType::kA, "mail.example.org", t0));
  EXPECT_FALSE(cache.get(DnsType::kAAAA, "mail.example.org", t0));
  EXPECT_FALSE(cache.get(DnsType::kMX, "mail.example.org", t0));
}

TEST(DnsCache, TtlIsClampedToMinAndMax) {
  DnsCache cache(limits(60s, 600s, 100));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "short.test", ok(0), t0);
  cache.put(DnsType::kA, "long.test", ok(86400), t0);
  EXPECT_TRUE(cache.get(DnsType::kA, "short.test", t0 + 59s));
  EXPECT_FALSE(cache.get(DnsType::kA, "short.test", t0 + 60s));
  EXPECT_TRUE(cache.get(DnsType::kA, "long.test", t0 + 599s));
  EXPECT_FALSE(cache.get(DnsType::kA, "long.test", t0 + 600s));
}

TEST(DnsCache, NegativeAnswersAreCachedForNegativeTtl) {
  DnsCache cache(limits(10s, 3600s, 100, 120s));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "9.0.0.127.zen.test", DnsAnswer{DnsStatus::kNxDomain, {}, 0}, t0);
  cache.put(DnsType::kMX, "nomx.test", DnsAnswer{DnsStatus::kNoData, {}, 0}, t0);
  auto nx = cache.get(DnsType::kA, "9.0.0.127.zen.test", t0 + 119s);
  ASSERT_TRUE(nx);
  EXPECT_EQ(nx->status, DnsStatus::kNxDomain);
  auto nodata = cache.get(DnsType::kMX, "nomx.test", t0 + 1s);
  ASSERT_TRUE(nodata);
  EXPECT_EQ(nodata->status, DnsStatus::kNoData);
  EXPECT_FALSE(cache.get(DnsType::kA, "9.0.0.127.zen.test", t0 + 120s));
}

TEST(DnsCache, NegativeTtlIsClampedToo) {
  DnsCache cache(limits(30s, 60s, 100, 3600s));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "nx.test", DnsAnswer{DnsStatus::kNxDomain, {}, 0}, t0);
  EXPECT_FALSE(cache.get(DnsType::kA, "nx.test", t0 + 60s));
}

TEST(DnsCache, TempFailIsNeverCached) {
  DnsCache cache(limits(60s, 3600s, 100));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "down.test", DnsAnswer{DnsStatus::kTempFail, {}, 300}, t0);
  EXPECT_FALSE(cache.get(DnsType::kA, "down.test", t0));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsCache, BoundedEntriesEvictLeastRecentlyUsed) {
  DnsCache cache(limits(60s, 3600s, 3));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "a.test", ok(300), t0);
  cache.put(DnsType::kA, "b.test", ok(300), t0);
  cache.put(DnsType::kA, "c.test", ok(300), t0);
  EXPECT_TRUE(cache.get(DnsType::kA, "a.test", t0 + 1s));  // a is now the most recent
  cache.put(DnsType::kA, "d.test", ok(300), t0 + 2s);      // b goes
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_FALSE(cache.get(DnsType::kA, "b.test", t0 + 3s));
  EXPECT_TRUE(cache.get(DnsType::kA, "a.test", t0 + 3s));
  EXPECT_TRUE(cache.get(DnsType::kA, "c.test", t0 + 3s));
  EXPECT_TRUE(cache.get(DnsType::kA, "d.test", t0 + 3s));
}

TEST(DnsCache, PutReplacesAnEntry) {
  DnsCache cache(limits(1s, 3600s, 2));
  Clock::time_point t0{};
  cache.put(DnsType::kA, "a.test", ok(10, "127.0.0.2"), t0);
  cache.put(DnsType::kA, "a.test", ok(100, "127.0.0.3"), t0 + 5s);
  EXPECT_EQ(cache.size(), 1u);
  auto hit = cache.get(DnsType::kA, "a.test", t0 + 50s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->values.front(), "127.0.0.3");
}

TEST(DnsCache, ZeroSizeCachesNothing) {
  DnsCache cache(limits(60s, 3600s, 0));
  cache.put(DnsType::kA, "a.test", ok(300), Clock::time_point{});
  EXPECT_FALSE(cache.get(DnsType::kA, "a.test", Clock::time_point{}));
}

}  // namespace
}  // namespace mxscreen::proxy
