// protocol/address.h: IPv4/IPv6 addresses, endpoints (address + port) and CIDR networks as
// plain values. Parsing and formatting are done here by hand so that protocol/ and checks/
// never need a socket header; proxy/ converts to and from sockaddr at the edge.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxscreen::protocol {

struct IpAddress {
  enum class Family : uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  // Network byte order. IPv4 uses bytes[0..3]; the rest stays zero.
  std::array<uint8_t, 16> bytes{};

  // "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (an IPv4-mapped IPv6 address is returned
  // as IPv4, so that a dual-stack listener and CIDR lists see the client the same way).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);
  bool is_v4() const { return family == Family::kV4; }
  // Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as "::").
  std::string to_string() const;
  // The address as IPv4-mapped IPv6 when it is IPv4, else itself.
  IpAddress as_v6() const;
  bool operator==(const IpAddress&) const = default;
};

struct Endpoint {
  IpAddress address;
  uint16_t port = 0;

  // "192.0.2.1:25", "[2001:db8::1]:25". The port is required.
  static std::optional<Endpoint> parse(std::string_view text);
  // "192.0.2.1:25" / "[2001:db8::1]:25" (config form).
  std::string to_string() const;
  // "[192.0.2.1]:25" (Postfix's log form, for both families).
  std::string log_string() const;
  bool operator==(const Endpoint&) const = default;
};

struct Cidr {
  IpAddress network;  // host bits cleared
  int prefix = 0;     // 0..32 or 0..128

  // "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128). Host bits set below
  // the prefix are cleared, as Postfix's cidr tables warn and do.
  static std::optional<Cidr> parse(std::string_view text);
  // An IPv4 client never matches an IPv6 network and vice versa (mapped addresses are
  // already IPv4 after parsing).
  bool contains(const IpAddress& address) const;
  std::string to_string() const;
};

// The first `prefix` bits of `address`, the rest zero (greylist networks, ban keys).
IpAddress mask_address(const IpAddress& address, int prefix);

// One client as per-client state counts it (connection limits, bans, strikes, fake-MX hits,
// the pass cache): an IPv4 address is itself; an IPv6 address is its `ipv6_prefix` network,
// since one subscriber holds at least a /64 (RFC 6177) and may rotate through it at will.
Cidr client_network(const IpAddress& address, int ipv6_prefix);
// client_network() as text: "192.0.2.7", "2001:db8:1:2::/64"; a /128 is the bare address.
std::string client_identity(const IpAddress& address, int ipv6_prefix);

}  // namespace mxscreen::protocol
