// tests/fuzz/address_fuzz.cc: IP address, endpoint and CIDR parsing (protocol/address), as
// they come from PROXY headers, access files, the admin socket and the config: whatever
// parses must print in canonical form and parse back to the same value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/address.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ip = IpAddress::parse(text)) {
    std::string canonical = ip->to_string();
    auto again = IpAddress::parse(canonical);
    FUZZ_CHECK(again && *again == *ip);
    FUZZ_CHECK(again->to_string() == canonical);
    (void)ip->as_v6();
    int max = ip->is_v4() ? 32 : 128;
    for (int prefix : {0, 1, 24, max / 2, max - 1, max}) {
      IpAddress masked = mask_address(*ip, prefix);
      Cidr net{masked, prefix};
      FUZZ_CHECK(net.contains(*ip));
    }
  }
  if (auto ep = Endpoint::parse(text)) {
    auto again = Endpoint::parse(ep->to_string());
    FUZZ_CHECK(again && *again == *ep);
    (void)ep->log_string();
  }
  if (auto net = Cidr::parse(text)) {
    FUZZ_CHECK(net->prefix >= 0 && net->prefix <= (net->network.is_v4() ? 32 : 128));
    FUZZ_CHECK(net->contains(net->network));
    auto again = Cidr::parse(net->to_string());
    FUZZ_CHECK(again && again->network == net->network && again->prefix == net->prefix);
  }
  return 0;
}
