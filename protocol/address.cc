// protocol/address.cc: hand-written IPv4/IPv6 text parsing (the forms inet_pton accepts, minus
// zone ids) and RFC 5952 formatting, endpoints, CIDR networks and masking. Standard library
// only: proxy/ converts to and from sockaddr at the edge.
#include "protocol/address.h"

#include <algorithm>
#include <cstddef>

namespace mxscreen::protocol {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Dotted quad, exactly four decimal parts of 0..255. A part with a leading zero ("01") is
// refused, as glibc's inet_pton does: some resolvers read it as octal.
bool parse_v4(std::string_view text, uint8_t* out) {
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= text.size() || text[pos] != '.') return false;
      ++pos;
    }
    size_t start = pos;
    int value = 0;
    while (pos < text.size() && is_digit(text[pos]) && pos - start < 3) {
      value = value * 10 + (text[pos] - '0');
      ++pos;
    }
    size_t digits = pos - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return false;
    out[part] = static_cast<uint8_t>(value);
  }
  return pos == text.size();
}

// RFC 4291 section 2.2 text forms: eight groups of 1..4 hex digits, one "::" standing for at
// least one zero group, and an optional dotted-quad tail in place of the last two groups.
bool parse_v6(std::string_view text, uint8_t* out) {
  std::array<uint8_t, 16> bytes{};
  int groups = 0;   // 16-bit groups written so far
  int gap_at = -1;  // group index where "::" stands
  size_t pos = 0;
  if (text.size() < 2) return false;
  if (text[0] == ':') {
    if (text[1] != ':') return false;
    gap_at = 0;
    pos = 2;
    if (pos == text.size()) {
      std::copy(bytes.begin(), bytes.end(), out);
      return true;
    }
  }
  while (true) {
    if (groups == 8) return false;
    size_t start = pos;
    unsigned value = 0;
    while (pos < text.size() && hex_value(text[pos]) >= 0 && pos - start < 4) {
      value = value * 16 + static_cast<unsigned>(hex_value(text[pos]));
      ++pos;
    }
    if (pos == start) return false;
    if (pos < text.size() && text[pos] == '.') {
      // Embedded IPv4 tail: must be the last thing and fit in the remaining two groups.
      if (groups > 6) return false;
      if (!parse_v4(text.substr(start), &bytes[groups * 2])) return false;
      groups += 2;
      break;
    }
    bytes[groups * 2] = static_cast<uint8_t>(value >> 8);
    bytes[groups * 2 + 1] = static_cast<uint8_t>(value & 0xff);
    ++groups;
    if (pos == text.size()) break;
    if (text[pos] != ':') return false;  // a fifth hex digit, a zone id or other junk
    ++pos;
    if (pos < text.size() && text[pos] == ':') {
      if (gap_at >= 0) return false;
      gap_at = groups;
      ++pos;
      if (pos == text.size()) break;
    } else if (pos == text.size()) {
      return false;  // trailing single colon
    }
  }
  if (gap_at >= 0) {
    if (groups >= 8) return false;  // "::" must stand for at least one group
    int tail = groups - gap_at;
    int shift = 8 - groups;
    for (int i = tail - 1; i >= 0; --i) {
      int from = (gap_at + i) * 2;
      int to = (gap_at + shift + i) * 2;
      bytes[to] = bytes[from];
      bytes[to + 1] = bytes[from + 1];
      bytes[from] = 0;
      bytes[from + 1] = 0;
    }
  } else if (groups != 8) {
    return false;
  }
  std::copy(bytes.begin(), bytes.end(), out);
  return true;
}

bool is_mapped(const std::array<uint8_t, 16>& bytes) {
  return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin());
}

std::string v4_string(const uint8_t* b) {
  std::string out;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out += '.';
    out += std::to_string(b[i]);
  }
  return out;
}

void append_hex_group(std::string* out, unsigned value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    unsigned nibble = (value >> shift) & 0xf;
    if (nibble != 0 || started || shift == 0) {
      *out += kDigits[nibble];
      started = true;
    }
  }
}

// RFC 5952 section 4: lower case, no leading zeros, the longest run (first on a tie) of two or
// more zero groups as "::". IPv4-mapped addresses use the mixed form of section 5.
std::string v6_string(const std::array<uint8_t, 16>& bytes) {
  if (is_mapped(bytes)) return "::ffff:" + v4_string(&bytes[12]);
  std::array<unsigned, 8> groups{};
  for (int i = 0; i < 8; ++i) groups[i] = (unsigned{bytes[i * 2]} << 8) | bytes[i * 2 + 1];
  int best_start = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best_start = -1;
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    append_hex_group(&out, groups[i]);
  }
  return out;
}

// 1..65535, decimal digits only.
std::optional<uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

int family_bits(IpAddress::Family family) { return family == IpAddress::Family::kV4 ? 32 : 128; }

// "[host]:port", built by appending. `"[" + std::string&&` inserts at the front of the
// temporary (a memmove of the whole address), and GCC 12 at -O2/-O3 warns about that inlined
// insert with a bogus -Wrestrict (GCC bug 105329), which stops Release -Werror builds.
std::string bracketed(const IpAddress& address, uint16_t port) {
  std::string out = "[";
  out += address.to_string();
  out += "]:";
  out += std::to_string(port);
  return out;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  IpAddress address;
  if (text.find(':') == std::string_view::npos) {
    if (!parse_v4(text, address.bytes.data())) return std::nullopt;
    return address;
  }
  address.family = Family::kV6;
  if (!parse_v6(text, address.bytes.data())) return std::nullopt;
  if (is_mapped(address.bytes)) {
    return v4(address.bytes[12], address.bytes[13], address.bytes[14], address.bytes[15]);
  }
  return address;
}

IpAddress IpAddress::v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress address;
  address.bytes[0] = a;
  address.bytes[1] = b;
  address.bytes[2] = c;
  address.bytes[3] = d;
  return address;
}

std::string IpAddress::to_string() const {
  return is_v4() ? v4_string(bytes.data()) : v6_string(bytes);
}

IpAddress IpAddress::as_v6() const {
  if (!is_v4()) return *this;
  IpAddress mapped;
  mapped.family = Family::kV6;
  std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), mapped.bytes.begin());
  std::copy(bytes.begin(), bytes.begin() + 4, mapped.bytes.begin() + 12);
  return mapped;
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    // "[2001:db8::1]:25"; "[192.0.2.1]:25" (Postfix's log form) is accepted too.
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    // An unbracketed IPv6 address is ambiguous ("2001:db8::1:25"): refuse it.
    if (host.find(':') != std::string_view::npos) return std::nullopt;
    port = text.substr(colon + 1);
  }
  auto address = IpAddress::parse(host);
  auto number = parse_port(port);
  if (!address || !number) return std::nullopt;
  return Endpoint{*address, *number};
}

std::string Endpoint::to_string() const {
  if (address.is_v4()) return address.to_string() + ":" + std::to_string(port);
  return bracketed(address, port);
}

std::string Endpoint::log_string() const { return bracketed(address, port); }

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  std::string_view host = text.substr(0, slash);
  auto address = IpAddress::parse(host);
  if (!address) return std::nullopt;
  int bits = family_bits(address->family);
  // "::ffff:192.0.2.0/120" is an IPv4 network written in mapped form.
  bool mapped_text = address->is_v4() && host.find(':') != std::string_view::npos;
  if (mapped_text) bits = 128;
  int prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : digits) {
      if (!is_digit(c)) return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > bits) return std::nullopt;
  }
  if (mapped_text) {
    if (prefix >= 96) {
      prefix -= 96;
    } else {
      *address = address->as_v6();
    }
  }
  return Cidr{mask_address(*address, prefix), prefix};
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.family != network.family) return false;
  return mask_address(address, prefix) == network;
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix); }

IpAddress mask_address(const IpAddress& address, int prefix) {
  int bits = family_bits(address.family);
  if (prefix < 0) prefix = 0;
  if (prefix > bits) prefix = bits;
  IpAddress masked = address;
  for (int i = 0; i < 16; ++i) {
    int keep = prefix - i * 8;
    if (keep >= 8) continue;
    if (keep <= 0) {
      masked.bytes[i] = 0;
    } else {
      masked.bytes[i] &= static_cast<uint8_t>(0xff << (8 - keep));
    }
  }
  return masked;
}

Cidr client_network(const IpAddress& address, int ipv6_prefix) {
  int prefix = address.is_v4() ? 32 : std::clamp(ipv6_prefix, 0, 128);
  return Cidr{mask_address(address, prefix), prefix};
}

std::string client_identity(const IpAddress& address, int ipv6_prefix) {
  Cidr network = client_network(address, ipv6_prefix);
  if (network.prefix == family_bits(address.family)) return network.network.to_string();
  return network.to_string();
}

}  // namespace mxscreen::protocol
