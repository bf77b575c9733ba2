// proxy/uv_handle.cc: address conversion at the socket edge.
#include "proxy/uv_handle.h"

#include <netinet/in.h>

#include <cstring>

namespace mxscreen::proxy {

protocol::Endpoint endpoint_from_sockaddr(const sockaddr* sa) {
  protocol::Endpoint ep;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ep.address.family = protocol::IpAddress::Family::kV4;
    std::memcpy(ep.address.bytes.data(), &in->sin_addr, 4);
    ep.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ep.address.family = protocol::IpAddress::Family::kV6;
    std::memcpy(ep.address.bytes.data(), &in6->sin6_addr, 16);
    ep.port = ntohs(in6->sin6_port);
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: treat them as IPv4.
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ep.address.bytes.data(), kMapped, 12) == 0) {
      ep.address.family = protocol::IpAddress::Family::kV4;
      std::memmove(ep.address.bytes.data(), ep.address.bytes.data() + 12, 4);
      std::memset(ep.address.bytes.data() + 4, 0, 12);
    }
  }
  return ep;
}

sockaddr_storage sockaddr_from_endpoint(const protocol::Endpoint& endpoint) {
  sockaddr_storage ss{};
  if (endpoint.address.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(endpoint.port);
    std::memcpy(&in->sin_addr, endpoint.address.bytes.data(), 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(endpoint.port);
    std::memcpy(&in6->sin6_addr, endpoint.address.bytes.data(), 16);
  }
  return ss;
}

std::optional<protocol::Endpoint> tcp_peer(const uv_tcp_t* tcp, int* error) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (int rc = uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len); rc != 0) {
    if (error) *error = rc;
    return std::nullopt;
  }
  return endpoint_from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

protocol::Endpoint tcp_local(const uv_tcp_t* tcp) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return endpoint_from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

std::string uv_error(int code) { return uv_strerror(code); }

}  // namespace mxscreen::proxy
