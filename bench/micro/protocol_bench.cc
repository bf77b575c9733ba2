// bench/micro/protocol_bench.cc: micro-benchmarks for the per-connection protocol work that
// sits on mxscreen's hot path: the PROXY v2 header written at every handoff, the PROXY v1/v2
// parse of a listener behind a load balancer, and the CIDR access-list decision made at
// every connect (1,000 rules, the size of a busy postscreen_access_list).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "checks/access.h"
#include "protocol/address.h"
#include "protocol/proxy_header.h"

namespace {

using mxscreen::checks::AccessDecision;
using mxscreen::checks::AccessList;
using mxscreen::checks::AccessRule;
using mxscreen::protocol::Cidr;
using mxscreen::protocol::Endpoint;
using mxscreen::protocol::IpAddress;

Endpoint endpoint(const char* text) { return *Endpoint::parse(text); }

void BM_EncodeProxyV2_IPv4(benchmark::State& state) {
  const Endpoint src = endpoint("192.0.2.77:48211");
  const Endpoint dst = endpoint("198.51.100.1:25");
  for (auto _ : state) {
    std::string header = mxscreen::protocol::encode_proxy_v2(src, dst);
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_EncodeProxyV2_IPv4);

void BM_EncodeProxyV2_IPv6(benchmark::State& state) {
  const Endpoint src = endpoint("[2001:db8:1234::77]:48211");
  const Endpoint dst = endpoint("[2001:db8::1]:25");
  for (auto _ : state) {
    std::string header = mxscreen::protocol::encode_proxy_v2(src, dst);
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_EncodeProxyV2_IPv6);

void BM_EncodeProxyV1_IPv4(benchmark::State& state) {
  const Endpoint src = endpoint("192.0.2.77:48211");
  const Endpoint dst = endpoint("198.51.100.1:25");
  for (auto _ : state) {
    std::string header = mxscreen::protocol::encode_proxy_v1(src, dst);
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_EncodeProxyV1_IPv4);

// Parse of a complete header followed by the client's first command, as a listener with
// proxy_protocol = true sees it.
void parse_bench(benchmark::State& state, const std::string& bytes) {
  for (auto _ : state) {
    auto parsed = mxscreen::protocol::parse_proxy_header(bytes);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes.size()));
}

void BM_ParseProxyV2_IPv4(benchmark::State& state) {
  parse_bench(state, mxscreen::protocol::encode_proxy_v2(endpoint("192.0.2.77:48211"),
                                                         endpoint("198.51.100.1:25")) +
                         "EHLO mail.example.org\r\n");
}
BENCHMARK(BM_ParseProxyV2_IPv4);

void BM_ParseProxyV2_IPv6(benchmark::State& state) {
  parse_bench(state, mxscreen::protocol::encode_proxy_v2(endpoint("[2001:db8:1234::77]:48211"),
                                                         endpoint("[2001:db8::1]:25")) +
                         "EHLO mail.example.org\r\n");
}
BENCHMARK(BM_ParseProxyV2_IPv6);

void BM_ParseProxyV1_IPv4(benchmark::State& state) {
  parse_bench(state, mxscreen::protocol::encode_proxy_v1(endpoint("192.0.2.77:48211"),
                                                         endpoint("198.51.100.1:25")) +
                         "EHLO mail.example.org\r\n");
}
BENCHMARK(BM_ParseProxyV1_IPv4);

// A junk first line must be refused at the first wrong byte, not after buffering.
void BM_ParseProxyInvalid(benchmark::State& state) {
  parse_bench(state, "EHLO mail.example.org\r\n");
}
BENCHMARK(BM_ParseProxyInvalid);

// 1,000 rules: 500 IPv4 /24 and /28 networks spread over 10.0.0.0/8, 500 IPv6 /48s, ending in
// the default allow of loopback. Half permit, half reject.
AccessList make_access_list(int rule_count) {
  std::vector<AccessRule> rules;
  rules.reserve(static_cast<size_t>(rule_count));
  for (int i = 0; i < rule_count; ++i) {
    std::string text;
    if (i % 2 == 0) {
      text = "10." + std::to_string((i / 2) % 256) + "." + std::to_string((i * 7) % 256) + ".0/" +
             (i % 4 == 0 ? "24" : "28");
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "2001:db8:%x::/48", i);
      text = buf;
    }
    AccessRule rule;
    rule.network = *Cidr::parse(text);
    rule.decision = (i % 3 == 0) ? AccessDecision::kReject : AccessDecision::kPermit;
    rules.push_back(rule);
  }
  return AccessList(std::move(rules), {}, {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")});
}

// Worst case for a linear first-match list: the client matches nothing (most of the
// Internet), so every rule is looked at.
void BM_AccessDecide_Miss_IPv4(benchmark::State& state) {
  const AccessList list = make_access_list(static_cast<int>(state.range(0)));
  const IpAddress client = IpAddress::v4(192, 0, 2, 77);
  for (auto _ : state) {
    benchmark::DoNotOptimize(list.decide(client));
  }
  state.counters["rules"] = static_cast<double>(list.size());
}
BENCHMARK(BM_AccessDecide_Miss_IPv4)->Arg(10)->Arg(1000);

void BM_AccessDecide_Miss_IPv6(benchmark::State& state) {
  const AccessList list = make_access_list(static_cast<int>(state.range(0)));
  const IpAddress client = *IpAddress::parse("2a00:1450:4001:81b::1");
  for (auto _ : state) {
    benchmark::DoNotOptimize(list.decide(client));
  }
}
BENCHMARK(BM_AccessDecide_Miss_IPv6)->Arg(1000);

// A spread of clients, some matching early, some late, some not at all.
void BM_AccessDecide_Mixed(benchmark::State& state) {
  const AccessList list = make_access_list(static_cast<int>(state.range(0)));
  std::vector<IpAddress> clients;
  for (int i = 0; i < 256; ++i) {
    clients.push_back(IpAddress::v4(i % 2 ? 10 : 192, static_cast<uint8_t>(i),
                                    static_cast<uint8_t>(i * 7), static_cast<uint8_t>(i * 3)));
  }
  clients.push_back(IpAddress::v4(127, 0, 0, 1));
  size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(list.decide(clients[next]));
    next = (next + 1) % clients.size();
  }
}
BENCHMARK(BM_AccessDecide_Mixed)->Arg(1000);

}  // namespace
