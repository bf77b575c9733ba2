// protocol/policy.cc: see policy.h.
#include "protocol/policy.h"

namespace mxscreen::protocol {

std::string_view PolicyRequest::get(std::string_view name) const {
  for (auto it = attributes.rbegin(); it != attributes.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return {};
}

std::string_view to_string(PolicyParse status) {
  switch (status) {
    case PolicyParse::kRequest:
      return "request";
    case PolicyParse::kNeedMore:
      return "need more";
    case PolicyParse::kTooLarge:
      return "request too large";
    case PolicyParse::kTooManyAttributes:
      return "too many attributes";
    case PolicyParse::kBadLine:
      return "malformed attribute line";
  }
  return "?";
}

PolicyParse PolicyParser::next(PolicyRequest* out) {
  std::string_view rest(buffer_);
  rest.remove_prefix(start_);
  while (true) {
    // Lines before pos_ were parsed into pending_ by an earlier call: a request that arrives
    // a byte at a time is scanned once, not once per byte.
    std::size_t eol = rest.find('\n', pos_);
    if (eol == std::string_view::npos || eol + 1 > limits_.max_request_bytes) {
      // A request that cannot end within the limit is refused as soon as that is certain.
      if (rest.size() > limits_.max_request_bytes) return PolicyParse::kTooLarge;
      return PolicyParse::kNeedMore;
    }
    std::string_view line = rest.substr(pos_, eol - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // tolerated
    pos_ = eol + 1;
    if (line.empty()) break;  // the end of the request
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0 || line.find('\0') != std::string_view::npos) {
      return PolicyParse::kBadLine;
    }
    if (pending_.attributes.size() >= limits_.max_attributes) {
      return PolicyParse::kTooManyAttributes;
    }
    pending_.attributes.emplace_back(std::string(line.substr(0, eq)),
                                     std::string(line.substr(eq + 1)));
  }
  start_ += pos_;
  pos_ = 0;
  // Compact once the handed-out requests are most of the buffer.
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  } else if (start_ > buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  *out = std::move(pending_);
  pending_ = {};
  return PolicyParse::kRequest;
}

std::string format_policy_action(std::string_view action) {
  std::string out = "action=";
  out.reserve(action.size() + 9);
  for (char c : action) out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\n\n";
  return out;
}

}  // namespace mxscreen::protocol
