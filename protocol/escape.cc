// protocol/escape.cc: byte-level escaping for log lines and JSON strings. Every byte is handled
// on its own (no UTF-8 decoding), so a malformed sequence can never break the output.
#include "protocol/escape.h"

namespace mxscreen::protocol {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_hex_byte(std::string* out, unsigned char byte) {
  *out += kHex[byte >> 4];
  *out += kHex[byte & 0x0f];
}

}  // namespace

std::string printable(std::string_view text, size_t max_len) {
  bool truncated = text.size() > max_len;
  if (truncated) text = text.substr(0, max_len);
  std::string out;
  out.reserve(text.size() + (truncated ? 3 : 0));
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte == '\\') {
      out += "\\\\";
    } else if (byte >= 0x20 && byte <= 0x7e) {
      out += c;
    } else {
      out += "\\x";
      append_hex_byte(&out, byte);
    }
  }
  if (truncated) out += "...";
  return out;
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte == '"' || byte == '\\') {
      out += '\\';
      out += c;
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      out += "\\u00";
      append_hex_byte(&out, byte);
    }
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace mxscreen::protocol
