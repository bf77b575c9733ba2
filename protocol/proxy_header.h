// protocol/proxy_header.h: the HAProxy PROXY protocol, versions 1 (text) and 2 (binary), as in
// HAProxy's doc/proxy-protocol.txt. Encoding for the backend handoff, and an incremental,
// sans-I/O parser for listeners behind a load balancer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/address.h"

namespace mxscreen::protocol {

struct ProxyHeader {
  // v2 LOCAL command, v1 "UNKNOWN", or a v2 family without addresses we use (AF_UNSPEC,
  // AF_UNIX): the connection's own endpoints stand.
  bool local = false;
  Endpoint source;
  Endpoint destination;
};

// "PROXY TCP4 192.0.2.1 198.51.100.1 4711 25\r\n". When the families differ, TCP6 with the
// IPv4 side written as an IPv4-mapped address.
std::string encode_proxy_v1(const Endpoint& src, const Endpoint& dst);
// Binary v2 header: PROXY command, STREAM transport, no TLVs (same family rule as v1).
std::string encode_proxy_v2(const Endpoint& src, const Endpoint& dst);

// The longest v1 header, CRLF included (spec section 2.1).
inline constexpr size_t kProxyV1MaxLength = 107;
// The largest v2 address+TLV block we accept; the fixed part is 16 bytes more.
inline constexpr size_t kProxyV2MaxPayload = 1024;

struct ProxyParse {
  enum class Status { kNeedMore, kDone, kInvalid };
  Status status = Status::kNeedMore;
  size_t consumed = 0;  // header length when kDone; the bytes after it are the client's
  ProxyHeader header;
  std::string error;  // why, when kInvalid
};

// Looks at the bytes received so far. kNeedMore only while they are a valid prefix of a
// header; anything that cannot become one (an SMTP command, a TLS hello, junk) is kInvalid as
// soon as the first wrong byte is seen. v2 TLVs are skipped.
ProxyParse parse_proxy_header(std::string_view buffered);

}  // namespace mxscreen::protocol
