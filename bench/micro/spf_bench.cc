// bench/micro/spf_bench.cc: the cost of one SPF evaluation (checks/spf.h) of a sender whose
// domain has an include:_spf.google.com-shaped record (three netblock includes, the client
// matched in the last one: the longest walk), with every answer in the DNS cache: the pure
// evaluator fed from proxy/dns_cache, and the same through the resolver on a libuv loop
// (proxy/async_check_driver.h), which adds one loop turn per round.
#include <benchmark/benchmark.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "checks/spf.h"
#include "proxy/async_check_driver.h"
#include "proxy/dns.h"
#include "proxy/dns_cache.h"

namespace {

using namespace mxscreen;

// Google's published records, shape and size (2024).
const std::vector<std::pair<std::string, std::string>> kRecords = {
    {"example.org", "v=spf1 include:_spf.google.com ~all"},
    {"_spf.google.com",
     "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com "
     "include:_netblocks3.google.com ~all"},
    {"_netblocks.google.com",
     "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 ip4:66.249.80.0/20 "
     "ip4:72.14.192.0/18 ip4:74.125.0.0/16 ip4:108.177.8.0/21 ip4:173.194.0.0/16 "
     "ip4:209.85.128.0/17 ip4:216.58.192.0/19 ip4:216.239.32.0/19 ~all"},
    {"_netblocks2.google.com",
     "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ip6:2607:f8b0:4000::/36 "
     "ip6:2800:3f0:4000::/36 ip6:2a00:1450:4000::/36 ip6:2c0f:fb50:4000::/36 ~all"},
    {"_netblocks3.google.com",
     "v=spf1 ip4:172.217.0.0/19 ip4:172.217.32.0/20 ip4:172.217.128.0/19 "
     "ip4:172.217.160.0/20 ip4:172.217.192.0/19 ip4:172.253.56.0/21 ip4:172.253.112.0/20 "
     "ip4:108.177.96.0/19 ip4:35.191.0.0/16 ip4:130.211.0.0/22 ~all"},
};

checks::SpfRequest request() {
  return checks::SpfRequest{*protocol::IpAddress::parse("130.211.1.5"), "mail-wr1.google.com",
                            "someone@example.org", "mx.example.net", 1700000000};
}

void fill(proxy::DnsCache& cache, proxy::DnsCache::Clock::time_point now) {
  for (const auto& [name, text] : kRecords) {
    proxy::DnsAnswer answer;
    answer.status = proxy::DnsStatus::kOk;
    answer.values = {text, "some-site-verification=0123456789"};
    answer.ttl = 3600;
    cache.put(proxy::DnsType::kTXT, name, answer, now);
  }
}

void BM_SpfGoogleIncludeFromCache(benchmark::State& state) {
  proxy::DnsCache cache(proxy::DnsCacheLimits{});
  auto now = proxy::DnsCache::Clock::now();
  fill(cache, now);
  for (auto _ : state) {
    checks::SpfCheck check(request());
    while (true) {
      auto progress = check.next();
      if (progress.done()) {
        if (progress.finding->result != checks::SpfResult::kPass) state.SkipWithError("not pass");
        benchmark::DoNotOptimize(progress.finding);
        break;
      }
      for (const auto& q : progress.questions) {
        auto answer = cache.get(proxy::to_dns_type(q.type), q.name, now);
        check.answer(q, proxy::to_check_reply(answer.value_or(proxy::DnsAnswer{})));
      }
    }
  }
}
BENCHMARK(BM_SpfGoogleIncludeFromCache);

void BM_SpfGoogleIncludeOnLoop(benchmark::State& state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    proxy::DnsConfig config;
    config.nameservers = {*protocol::Endpoint::parse("127.0.0.1:9")};  // never asked
    proxy::Resolver resolver(&loop, config, proxy::DnsOptions{});
    fill(resolver.cache(), proxy::DnsCache::Clock::now());
    for (auto _ : state) {
      bool passed = false;
      proxy::AsyncCheckDriver<checks::SpfFinding> driver(
          &loop, resolver, std::make_unique<checks::SpfCheck>(request()), std::chrono::seconds(20),
          [] { return checks::SpfFinding{}; },
          [&passed](const checks::SpfFinding& f) {
            passed = f.result == checks::SpfResult::kPass;
          });
      driver.start();
      while (!passed && uv_run(&loop, UV_RUN_ONCE) != 0) {
      }
      if (!passed) state.SkipWithError("not pass");
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the closed handles' callbacks
  uv_loop_close(&loop);
}
BENCHMARK(BM_SpfGoogleIncludeOnLoop);

}  // namespace
