// protocol/escape.cc: byte-level escaping for log lines and JSON strings. Every byte is handled
// on its own (no UTF-8 decoding), so a malformed sequence can never break the output.
#include "protocol/escape.h"

#include <charconv>

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

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= text.size()) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (ec != std::errc() || end != text.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

}  // namespace mxscreen::protocol
