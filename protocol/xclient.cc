// protocol/xclient.cc: builds the XCLIENT command line sent to the backend after its EHLO
// reply. Attribute names and the [UNAVAILABLE] convention follow Postfix's XCLIENT_README.
#include "protocol/xclient.h"

namespace mxscreen::protocol {
namespace {

constexpr std::string_view kUnavailable = "[UNAVAILABLE]";

void append_attr(std::string* out, std::string_view name, std::string_view encoded_value) {
  *out += ' ';
  *out += name;
  *out += '=';
  *out += encoded_value;
}

}  // namespace

std::string xtext_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 33 || byte > 126 || byte == '+' || byte == '=') {
      out += '+';
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0f];
    } else {
      out += c;
    }
  }
  return out;
}

std::string encode_xclient(const XclientAttrs& attrs) {
  std::string out = "XCLIENT";
  const IpAddress& address = attrs.client.address;
  append_attr(&out, "ADDR", address.is_v4() ? address.to_string() : "IPV6:" + address.to_string());
  if (attrs.client.port != 0) append_attr(&out, "PORT", std::to_string(attrs.client.port));
  append_attr(&out, "NAME",
              attrs.name.empty() ? std::string(kUnavailable) : xtext_encode(attrs.name));
  append_attr(&out, "HELO",
              attrs.helo.empty() ? std::string(kUnavailable) : xtext_encode(attrs.helo));
  if (!attrs.proto.empty()) append_attr(&out, "PROTO", xtext_encode(attrs.proto));
  out += "\r\n";
  return out;
}

}  // namespace mxscreen::protocol
