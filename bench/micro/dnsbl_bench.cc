// bench/micro/dnsbl_bench.cc: the cost of DNSBL site parsing, query names and scoring of one
// client, and of DNS cache lookups (hit, miss, insert with LRU eviction) at a realistic size.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "checks/dnsbl.h"
#include "proxy/dns_cache.h"

namespace {

using namespace mxscreen;
using namespace std::chrono_literals;

const std::vector<std::string> kSites = {"zen.spamhaus.org=127.0.0.[2..11]*3",
                                         "b.barracudacentral.org=127.0.0.2*2",
                                         "list.dnswl.org=127.0.[0..255].[1..3]*-5"};

std::vector<checks::DnsblSite> sites() { return *checks::parse_dnsbl_sites(kSites, nullptr); }

void BM_DnsblParseSites(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(checks::parse_dnsbl_sites(kSites, nullptr));
}
BENCHMARK(BM_DnsblParseSites);

void BM_DnsblQueryNameV4(benchmark::State& state) {
  auto client = *protocol::IpAddress::parse("192.0.2.99");
  for (auto _ : state)
    benchmark::DoNotOptimize(checks::dnsbl_query_name(client, "zen.spamhaus.org"));
}
BENCHMARK(BM_DnsblQueryNameV4);

void BM_DnsblQueryNameV6(benchmark::State& state) {
  auto client = *protocol::IpAddress::parse("2001:db8:1:2:3:4:567:89ab");
  for (auto _ : state)
    benchmark::DoNotOptimize(checks::dnsbl_query_name(client, "zen.spamhaus.org"));
}
BENCHMARK(BM_DnsblQueryNameV6);

// One client scored against three sites: listed on two, allowlisted on none.
void BM_DnsblScoreThreeSites(benchmark::State& state) {
  auto list = sites();
  std::vector<protocol::IpAddress> listed = {*protocol::IpAddress::parse("127.0.0.2"),
                                             *protocol::IpAddress::parse("127.0.0.4")};
  for (auto _ : state) {
    checks::DnsblScore score;
    score.add(list[0], listed);
    score.add(list[1], listed);
    score.add(list[2], {});
    benchmark::DoNotOptimize(score.rank());
  }
}
BENCHMARK(BM_DnsblScoreThreeSites);

// A clean client: every site answers NXDOMAIN.
void BM_DnsblScoreClean(benchmark::State& state) {
  auto list = sites();
  for (auto _ : state) {
    checks::DnsblScore score;
    for (const auto& site : list) score.add(site, {});
    benchmark::DoNotOptimize(score.rank());
  }
}
BENCHMARK(BM_DnsblScoreClean);

proxy::DnsCache filled_cache(std::size_t entries, std::vector<std::string>* names) {
  proxy::DnsCache cache(proxy::DnsCacheLimits{60s, 3600s, 60s, entries});
  proxy::DnsAnswer answer{proxy::DnsStatus::kOk, {"127.0.0.2"}, 300};
  for (std::size_t i = 0; i < entries; ++i) {
    std::string name =
        std::to_string(i % 256) + "." + std::to_string(i / 256 % 256) + ".0.10.zen.spamhaus.org";
    cache.put(proxy::DnsType::kA, name, answer, proxy::DnsCache::Clock::time_point{});
    names->push_back(std::move(name));
  }
  return cache;
}

void BM_DnsCacheHit(benchmark::State& state) {
  std::vector<std::string> names;
  auto cache = filled_cache(static_cast<std::size_t>(state.range(0)), &names);
  std::size_t i = 0;
  auto now = proxy::DnsCache::Clock::time_point{} + 10s;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.get(proxy::DnsType::kA, names[i], now));
    if (++i == names.size()) i = 0;
  }
}
BENCHMARK(BM_DnsCacheHit)->Arg(1000)->Arg(50000);

void BM_DnsCacheMiss(benchmark::State& state) {
  std::vector<std::string> names;
  auto cache = filled_cache(static_cast<std::size_t>(state.range(0)), &names);
  auto now = proxy::DnsCache::Clock::time_point{} + 10s;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.get(proxy::DnsType::kA, "99.2.0.192.zen.spamhaus.org", now));
  }
}
BENCHMARK(BM_DnsCacheMiss)->Arg(50000);

// Insert into a full cache: every put evicts the least recently used entry.
void BM_DnsCachePutEvicting(benchmark::State& state) {
  std::vector<std::string> names;
  auto cache = filled_cache(static_cast<std::size_t>(state.range(0)), &names);
  proxy::DnsAnswer answer{proxy::DnsStatus::kNxDomain, {}, 0};
  std::size_t i = 0;
  std::vector<std::string> fresh;
  for (int k = 0; k < 4096; ++k) fresh.push_back(std::to_string(k) + ".new.zen.spamhaus.org");
  for (auto _ : state) {
    cache.put(proxy::DnsType::kA, fresh[i], answer, proxy::DnsCache::Clock::time_point{});
    if (++i == fresh.size()) i = 0;
  }
}
BENCHMARK(BM_DnsCachePutEvicting)->Arg(50000);

}  // namespace
