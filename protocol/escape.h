// protocol/escape.h: making untrusted bytes (a client's HELO, a pregreet, a backend reply) safe
// for one log line or a JSON string. Pure functions, no locale.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mxscreen::protocol {

// Keeps printable ASCII 0x20..0x7e, writes a backslash as "\\" and every other byte as
// "\xNN" (lower-case hex). Only the first `max_len` input bytes are shown; "..." follows when
// the input was longer.
std::string printable(std::string_view text, size_t max_len = 100);

// The body of a JSON string (no surrounding quotes): '"' and '\' escaped, control characters,
// DEL and bytes >= 0x80 as "\u00NN", so the output is plain ASCII whatever the input was.
std::string json_escape(std::string_view text);

// ASCII A-Z to a-z, every other byte kept (DNS names, address domains; no locale).
std::string ascii_lower(std::string_view text);

// %XX escapes decoded (a redis:// URL's password, a ctl cursor); nullopt when a % is not
// followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text);

}  // namespace mxscreen::protocol
