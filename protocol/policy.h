// protocol/policy.h: the Postfix policy delegation protocol (SMTPD_POLICY_README), sans I/O.
// A request is "name=value" lines ending in an empty line; the answer is "action=...", then an
// empty line. The parser is fed bytes and hands out whole requests, bounded in size and in
// attribute count; it owns no socket and no clock.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxscreen::protocol {

struct PolicyLimits {
  std::size_t max_request_bytes = 16384;  // policy.request_size_limit
  // Postfix 3.7 sends about 30 attributes; a request with more is not from Postfix.
  std::size_t max_attributes = 128;
};

struct PolicyRequest {
  std::vector<std::pair<std::string, std::string>> attributes;  // in the order received

  // The value of the last attribute called `name` ("" when there is none).
  std::string_view get(std::string_view name) const;
};

enum class PolicyParse {
  kRequest,            // *out holds the next request
  kNeedMore,           // no complete request buffered yet (and within the limits)
  kTooLarge,           // the request does not end within max_request_bytes
  kTooManyAttributes,  // more than max_attributes lines
  kBadLine,            // a line that is not name=value (no '=', empty name, NUL byte)
};

std::string_view to_string(PolicyParse status);

class PolicyParser {
 public:
  explicit PolicyParser(PolicyLimits limits = {}) : limits_(limits) {}

  // Appends bytes as they arrive.
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete request, or why there is none. After an error the parser is spent: the
  // caller closes the connection (Postfix treats a dropped connection as a failed query).
  PolicyParse next(PolicyRequest* out);
  // Bytes buffered (of requests not yet handed out).
  std::size_t buffered() const { return buffer_.size() - start_; }

 private:
  PolicyLimits limits_;
  std::string buffer_;
  std::size_t start_ = 0;  // where the next request begins in buffer_
  std::size_t pos_ = 0;    // how far (from start_) the lines of pending_ were parsed
  PolicyRequest pending_;  // the attributes of the request being received
};

// "action=<action>\n\n". CR and LF inside `action` become spaces: one attribute line, always.
std::string format_policy_action(std::string_view action);

}  // namespace mxscreen::protocol
