// checks/helo.cc: see helo.h. Reply texts are Postfix's.
#include "checks/helo.h"

#include <algorithm>
#include <array>

#include "protocol/escape.h"
#include "protocol/smtp_command.h"

namespace mxscreen::checks {
namespace {

std::string_view without_trailing_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3), as an address.
std::optional<protocol::IpAddress> address_literal(std::string_view helo) {
  if (helo.size() < 3 || helo.front() != '[' || helo.back() != ']') return std::nullopt;
  std::string_view inner = helo.substr(1, helo.size() - 2);
  if (inner.size() > 5 && protocol::ascii_lower(inner.substr(0, 5)) == "ipv6:") {
    inner.remove_prefix(5);
  }
  return protocol::IpAddress::parse(inner);
}

bool is_own_name(std::string_view helo, const HeloFacts& facts) {
  if (auto literal = address_literal(helo)) {
    // A dual-stack listener may see an IPv4 client on an IPv4-mapped local address.
    return std::any_of(
        facts.own_addresses.begin(), facts.own_addresses.end(),
        [&](const protocol::IpAddress& own) { return own.as_v6() == literal->as_v6(); });
  }
  std::string_view host = without_trailing_dot(facts.hostname);
  return !host.empty() &&
         protocol::ascii_lower(without_trailing_dot(helo)) == protocol::ascii_lower(host);
}

}  // namespace

bool new_own_address(const HeloFacts& facts, const protocol::IpAddress& a) {
  const auto& own = facts.own_addresses;
  return a.bytes != std::array<uint8_t, 16>{} && std::find(own.begin(), own.end(), a) == own.end();
}

std::optional<std::string> helo_reject_reply(std::string_view helo, const HeloPolicy& policy,
                                             const HeloFacts& facts) {
  std::string shown = protocol::printable(helo, 255);
  if (policy.reject_invalid && !protocol::is_valid_helo(helo)) {
    return "501 5.5.2 <" + shown + ">: Helo command rejected: Invalid name";
  }
  if (policy.reject_non_fqdn && !protocol::is_fqdn(helo)) {
    return "504 5.5.2 <" + shown + ">: Helo command rejected: need fully-qualified hostname";
  }
  if (policy.reject_own_name && is_own_name(helo, facts)) {
    // Postfix's check_helo_access REJECT: access_map_reject_code 554, 5.7.1.
    return "554 5.7.1 <" + shown + ">: Helo command rejected: You are not me";
  }
  return std::nullopt;
}

}  // namespace mxscreen::checks
