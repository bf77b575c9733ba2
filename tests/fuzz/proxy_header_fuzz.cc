// tests/fuzz/proxy_header_fuzz.cc: the PROXY v1/v2 header parser (protocol/proxy_header) on
// whatever a client sends first. A header is found only once complete, every prefix of it is
// "need more", and a parsed header encodes and parses back to the same endpoints.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/proxy_header.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::protocol;
using Status = ProxyParse::Status;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ProxyParse whole = parse_proxy_header(bytes);
  if (whole.status == Status::kInvalid) FUZZ_CHECK(!whole.error.empty());
  if (whole.status != Status::kDone) {
    // Never more than the largest header is buffered waiting for the rest.
    if (whole.status == Status::kNeedMore) FUZZ_CHECK(size <= 16 + kProxyV2MaxPayload);
    return 0;
  }
  FUZZ_CHECK(whole.consumed > 0 && whole.consumed <= size);
  FUZZ_CHECK(whole.consumed <= 16 + kProxyV2MaxPayload);
  // The header alone parses the same; each shorter prefix needs more.
  ProxyParse exact = parse_proxy_header(bytes.substr(0, whole.consumed));
  FUZZ_CHECK(exact.status == Status::kDone && exact.consumed == whole.consumed);
  const size_t step = whole.consumed / 64 + 1;  // every prefix of a v1 header, 64 of a long v2
  for (size_t n = 0; n < whole.consumed; n += step) {
    FUZZ_CHECK(parse_proxy_header(bytes.substr(0, n)).status == Status::kNeedMore);
  }
  if (!whole.header.local) {
    const auto& h = whole.header;
    for (const std::string& encoded :
         {encode_proxy_v1(h.source, h.destination), encode_proxy_v2(h.source, h.destination)}) {
      ProxyParse back = parse_proxy_header(encoded);
      FUZZ_CHECK(back.status == Status::kDone && back.consumed == encoded.size());
      // Mixed families are encoded as IPv6 with the IPv4 side mapped; parsing maps it back.
      FUZZ_CHECK(back.header.source.port == h.source.port);
      FUZZ_CHECK(back.header.destination.port == h.destination.port);
      FUZZ_CHECK(back.header.source.address == h.source.address);
      FUZZ_CHECK(back.header.destination.address == h.destination.address);
    }
  }
  return 0;
}
