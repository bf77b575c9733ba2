// tests/fuzz/dns_answer_fuzz.cc: a DNS server's reply as far as mxscreen reads it: udns's
// parser behind proxy/dns's parse_dns_reply, then what the client lookups do with the values
// (addresses for DNSBL scoring and FCrDNS, names, TXT texts for replies) and the DNS cache.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "checks/dnsbl.h"
#include "protocol/address.h"
#include "protocol/escape.h"
#include "proxy/dns.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen;
using proxy::DnsType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  static constexpr DnsType kTypes[] = {DnsType::kA, DnsType::kAAAA, DnsType::kPTR, DnsType::kMX,
                                       DnsType::kTXT};
  DnsType type = kTypes[in.ConsumeIntegralInRange(0, 4)];
  std::string packet = in.ConsumeRemainingBytesAsString();
  proxy::DnsAnswer answer = proxy::parse_dns_reply(type, packet);
  if (answer.status != proxy::DnsStatus::kOk) FUZZ_CHECK(answer.values.empty());
  if (answer.status == proxy::DnsStatus::kOk) FUZZ_CHECK(!answer.values.empty());

  static const auto site = *checks::parse_dnsbl_site("zen.test=127.0.0.[2..11]*3", nullptr);
  std::vector<protocol::IpAddress> addresses;
  for (const auto& value : answer.values) {
    if (type == DnsType::kA || type == DnsType::kAAAA) {
      auto ip = protocol::IpAddress::parse(value);
      FUZZ_CHECK(ip.has_value());  // inet_ntop's text always parses
      addresses.push_back(*ip);
    } else {
      (void)protocol::printable(value, 200);
      (void)checks::rhsbl_query_name(value, "dbl.test");
    }
  }
  checks::DnsblScore score;
  (void)score.add(site, addresses);

  proxy::DnsCache cache(proxy::DnsCacheLimits{});
  auto now = proxy::DnsCache::Clock::time_point{} + std::chrono::hours(1);
  cache.put(type, "2.0.0.127.zen.test", answer, now);
  if (auto hit = cache.get(type, "2.0.0.127.zen.test", now)) {
    FUZZ_CHECK(hit->values == answer.values);
  }
  return 0;
}
