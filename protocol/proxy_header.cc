// protocol/proxy_header.cc: PROXY protocol v1/v2 encoding and the incremental header parser
// (HAProxy doc/proxy-protocol.txt). The parser decides the version from the first byte and
// refuses a wrong byte at once, so a client that talks SMTP first is not kept waiting.
#include "protocol/proxy_header.h"

#include <algorithm>
#include <array>
#include <vector>

namespace mxscreen::protocol {
namespace {

using Status = ProxyParse::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
// Section 2.2: "\r\n\r\n\0\r\nQUIT\n".
constexpr std::string_view kV2Signature{"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12};
constexpr size_t kV2FixedLength = 16;
constexpr size_t kV2Inet4Length = 12;  // 2 x 4 address bytes + 2 x 2 port bytes
constexpr size_t kV2Inet6Length = 36;  // 2 x 16 address bytes + 2 x 2 port bytes
constexpr size_t kV1MaxAddress4 = 15;  // "255.255.255.255"
constexpr size_t kV1MaxAddress6 = 45;  // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
constexpr size_t kV1MaxPort = 5;

ProxyParse need_more() { return ProxyParse{}; }

ProxyParse invalid(std::string error) {
  ProxyParse result;
  result.status = Status::kInvalid;
  result.error = std::move(error);
  return result;
}

bool is_prefix_of(std::string_view buffered, std::string_view expected) {
  size_t n = std::min(buffered.size(), expected.size());
  return buffered.substr(0, n) == expected.substr(0, n);
}

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  while (true) {
    size_t space = text.find(' ', start);
    if (space == std::string_view::npos) {
      tokens.push_back(text.substr(start));
      return tokens;
    }
    tokens.push_back(text.substr(start, space - start));
    start = space + 1;
  }
}

// v1 ports: decimal 0..65535 (section 2.1).
std::optional<uint16_t> parse_v1_port(std::string_view text) {
  if (text.empty() || text.size() > kV1MaxPort) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

std::optional<IpAddress> parse_v1_address(std::string_view text, bool v6) {
  // TCP4 takes dotted quads only; TCP6 takes IPv6 text (a mapped one comes back as IPv4).
  if ((text.find(':') != std::string_view::npos) != v6) return std::nullopt;
  return IpAddress::parse(text);
}

// `line` is everything after "PROXY " and before CRLF.
ProxyParse parse_v1_line(std::string_view line, size_t consumed) {
  std::vector<std::string_view> tokens = split_spaces(line);
  ProxyParse result;
  result.consumed = consumed;
  if (tokens[0] == "UNKNOWN") {
    // Section 2.1: the receiver must ignore anything after UNKNOWN up to the CRLF.
    result.status = Status::kDone;
    result.header.local = true;
    return result;
  }
  bool v6 = tokens[0] == "TCP6";
  if (!v6 && tokens[0] != "TCP4") return invalid("PROXY v1: unknown protocol");
  if (tokens.size() != 5) return invalid("PROXY v1: expected 4 fields after the protocol");
  auto src = parse_v1_address(tokens[1], v6);
  auto dst = parse_v1_address(tokens[2], v6);
  if (!src || !dst) return invalid("PROXY v1: bad address");
  auto sport = parse_v1_port(tokens[3]);
  auto dport = parse_v1_port(tokens[4]);
  if (!sport || !dport) return invalid("PROXY v1: bad port");
  result.status = Status::kDone;
  result.header.source = Endpoint{*src, *sport};
  result.header.destination = Endpoint{*dst, *dport};
  return result;
}

bool partial_token_ok(std::string_view token, size_t field, bool v6) {
  if (field >= 3) {
    return token.size() <= kV1MaxPort &&
           std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  if (token.size() > (v6 ? kV1MaxAddress6 : kV1MaxAddress4)) return false;
  return std::all_of(token.begin(), token.end(), [v6](char c) {
    bool digit = c >= '0' && c <= '9';
    bool hex = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    return digit || c == '.' || (v6 && (hex || c == ':'));
  });
}

// No LF yet: can `rest` (after "PROXY ") still become a valid line?
bool v1_prefix_ok(std::string_view rest) {
  std::vector<std::string_view> tokens = split_spaces(rest);
  std::string_view proto = tokens[0];
  if (tokens.size() == 1) {
    auto starts = [proto](std::string_view word) { return word.substr(0, proto.size()) == proto; };
    // A longer token can never equal substr() of a shorter word.
    return starts("TCP4") || starts("TCP6") || starts("UNKNOWN");
  }
  if (proto == "UNKNOWN") return true;
  bool v6 = proto == "TCP6";
  if (!v6 && proto != "TCP4") return false;
  if (tokens.size() > 5) return false;
  for (size_t i = 1; i + 1 < tokens.size(); ++i) {
    bool ok =
        i >= 3 ? parse_v1_port(tokens[i]).has_value() : parse_v1_address(tokens[i], v6).has_value();
    if (!ok) return false;
  }
  return partial_token_ok(tokens.back(), tokens.size() - 1, v6);
}

ProxyParse parse_v1(std::string_view buffered) {
  if (!is_prefix_of(buffered, kV1Prefix)) return invalid("not a PROXY header");
  std::string_view window = buffered.substr(0, kProxyV1MaxLength);
  size_t lf = window.find('\n');
  size_t cr = window.find('\r');
  if (lf != std::string_view::npos) {
    if (cr != lf - 1) return invalid("PROXY v1: line does not end in CRLF");
    if (lf < kV1Prefix.size()) return invalid("not a PROXY header");
    return parse_v1_line(window.substr(kV1Prefix.size(), cr - kV1Prefix.size()), lf + 1);
  }
  if (buffered.size() >= kProxyV1MaxLength) return invalid("PROXY v1: header too long");
  if (buffered.size() <= kV1Prefix.size()) return need_more();
  if (cr != std::string_view::npos) {
    // Only the last byte may be a CR, and the line before it must already be complete.
    if (cr != buffered.size() - 1) return invalid("PROXY v1: CR without LF");
    ProxyParse line = parse_v1_line(buffered.substr(kV1Prefix.size(), cr - kV1Prefix.size()), 0);
    return line.status == Status::kInvalid ? line : need_more();
  }
  if (!v1_prefix_ok(buffered.substr(kV1Prefix.size()))) return invalid("PROXY v1: malformed");
  return need_more();
}

uint16_t read_be16(std::string_view bytes, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(bytes[at]) << 8) |
                               static_cast<uint8_t>(bytes[at + 1]));
}

IpAddress read_v2_address(std::string_view bytes, size_t at, bool v6) {
  IpAddress address;
  if (!v6) {
    for (size_t i = 0; i < 4; ++i) address.bytes[i] = static_cast<uint8_t>(bytes[at + i]);
    return address;
  }
  address.family = IpAddress::Family::kV6;
  for (size_t i = 0; i < 16; ++i) address.bytes[i] = static_cast<uint8_t>(bytes[at + i]);
  // An IPv4-mapped source is the IPv4 client, as everywhere else (see IpAddress::parse).
  if (auto plain = IpAddress::parse(address.to_string())) return *plain;
  return address;
}

ProxyParse parse_v2(std::string_view buffered) {
  if (!is_prefix_of(buffered, kV2Signature)) return invalid("not a PROXY header");
  if (buffered.size() > 12) {
    auto ver_cmd = static_cast<uint8_t>(buffered[12]);
    if ((ver_cmd >> 4) != 2) return invalid("PROXY v2: unsupported version");
    if ((ver_cmd & 0x0f) > 1) return invalid("PROXY v2: unknown command");
  }
  if (buffered.size() > 13) {
    auto fam = static_cast<uint8_t>(buffered[13]);
    // Section 2.2: other family and transport values "must be rejected as invalid".
    if ((fam >> 4) > 3 || (fam & 0x0f) > 2) return invalid("PROXY v2: unknown family");
  }
  if (buffered.size() < kV2FixedLength) return need_more();
  size_t length = read_be16(buffered, 14);
  if (length > kProxyV2MaxPayload) return invalid("PROXY v2: header too long");
  if (buffered.size() < kV2FixedLength + length) return need_more();

  ProxyParse result;
  result.status = Status::kDone;
  result.consumed = kV2FixedLength + length;
  bool proxy_command = (static_cast<uint8_t>(buffered[12]) & 0x0f) == 1;
  auto fam = static_cast<uint8_t>(buffered[13]);
  // Like HAProxy, a PROXY command for anything but TCP over IPv4/IPv6 keeps the real endpoints.
  if (!proxy_command || (fam != 0x11 && fam != 0x21)) {
    result.header.local = true;
    return result;
  }
  bool v6 = fam == 0x21;
  size_t address_length = v6 ? 16 : 4;
  if (length < (v6 ? kV2Inet6Length : kV2Inet4Length)) {
    return invalid("PROXY v2: address block too short");
  }
  size_t at = kV2FixedLength;
  result.header.source.address = read_v2_address(buffered, at, v6);
  result.header.destination.address = read_v2_address(buffered, at + address_length, v6);
  result.header.source.port = read_be16(buffered, at + 2 * address_length);
  result.header.destination.port = read_be16(buffered, at + 2 * address_length + 2);
  return result;  // any TLVs after the addresses are skipped
}

void append_be16(std::string* out, uint16_t value) {
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value & 0xff));
}

}  // namespace

std::string encode_proxy_v1(const Endpoint& src, const Endpoint& dst) {
  bool v4 = src.address.is_v4() && dst.address.is_v4();
  std::string out = v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
  out += (v4 ? src.address : src.address.as_v6()).to_string();
  out += ' ';
  out += (v4 ? dst.address : dst.address.as_v6()).to_string();
  out += ' ';
  out += std::to_string(src.port);
  out += ' ';
  out += std::to_string(dst.port);
  out += "\r\n";
  return out;
}

std::string encode_proxy_v2(const Endpoint& src, const Endpoint& dst) {
  bool v4 = src.address.is_v4() && dst.address.is_v4();
  std::string out(kV2Signature);
  out.push_back('\x21');                // version 2, PROXY command
  out.push_back(v4 ? '\x11' : '\x21');  // AF_INET / AF_INET6, STREAM
  append_be16(&out, static_cast<uint16_t>(v4 ? kV2Inet4Length : kV2Inet6Length));
  size_t address_length = v4 ? 4 : 16;
  for (const Endpoint* endpoint : {&src, &dst}) {
    IpAddress address = v4 ? endpoint->address : endpoint->address.as_v6();
    out.append(reinterpret_cast<const char*>(address.bytes.data()), address_length);
  }
  append_be16(&out, src.port);
  append_be16(&out, dst.port);
  return out;
}

ProxyParse parse_proxy_header(std::string_view buffered) {
  if (buffered.empty()) return need_more();
  if (buffered[0] == kV2Signature[0]) return parse_v2(buffered);
  return parse_v1(buffered);
}

}  // namespace mxscreen::protocol
