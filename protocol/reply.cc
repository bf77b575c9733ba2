// protocol/reply.cc: SMTP reply formatting and the incremental backend reply reader. The reader
// is bounded by max_bytes per reply, so a backend that never ends a reply cannot grow memory.
#include "protocol/reply.h"

namespace mxscreen::protocol {
namespace {

void append_line(std::string* out, int code, char separator, std::string_view enhanced,
                 std::string_view text) {
  *out += std::to_string(code);
  if (!enhanced.empty() || !text.empty() || separator == '-') *out += separator;
  if (!enhanced.empty()) {
    *out += enhanced;
    if (!text.empty()) *out += ' ';
  }
  for (char c : text) *out += (c == '\r' || c == '\n') ? ' ' : c;
  *out += "\r\n";
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string format_reply(int code, std::string_view enhanced, std::string_view text) {
  std::string out;
  append_line(&out, code, ' ', enhanced, text);
  return out;
}

std::string format_multiline_reply(int code, std::string_view enhanced,
                                   const std::vector<std::string>& lines) {
  if (lines.empty()) return format_reply(code, enhanced, "");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    append_line(&out, code, i + 1 < lines.size() ? '-' : ' ', enhanced, lines[i]);
  }
  return out;
}

ReplyReader::ReplyReader(size_t max_bytes) : max_bytes_(max_bytes) {}

void ReplyReader::reset() {
  total_ = 0;
  partial_.clear();
  code_ = 0;
  lines_.clear();
  status_ = Status::kNeedMore;
}

ReplyReader::Status ReplyReader::feed(std::string_view bytes, size_t* consumed) {
  *consumed = 0;
  if (status_ != Status::kNeedMore) return status_;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t lf = bytes.find('\n', pos);
    size_t end = lf == std::string_view::npos ? bytes.size() : lf + 1;
    total_ += end - pos;
    if (total_ > max_bytes_) {
      status_ = Status::kInvalid;
      *consumed = end;
      return status_;
    }
    if (lf == std::string_view::npos) {
      partial_.append(bytes.substr(pos));
      *consumed = bytes.size();
      return status_;
    }
    std::string_view line = bytes.substr(pos, lf - pos);
    if (!partial_.empty()) {
      partial_.append(line);
      line = partial_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    take_line(line);
    partial_.clear();
    pos = end;
    if (status_ != Status::kNeedMore) {
      *consumed = pos;
      return status_;
    }
  }
  *consumed = pos;
  return status_;
}

void ReplyReader::take_line(std::string_view line) {
  // RFC 5321 section 4.2: Reply-code = %x32-35 %x30-35 %x30-39 (1yz accepted as well).
  bool code_ok = line.size() >= 3 && line[0] >= '1' && line[0] <= '5' && line[1] >= '0' &&
                 line[1] <= '5' && is_digit(line[2]);
  if (!code_ok || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    status_ = Status::kInvalid;
    return;
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  // Section 4.2.1: every line of a multi-line reply carries the same code.
  if (!lines_.empty() && code != code_) {
    status_ = Status::kInvalid;
    return;
  }
  code_ = code;
  lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  bool final_line = line.size() == 3 || line[3] == ' ';
  if (final_line) status_ = Status::kDone;
}

}  // namespace mxscreen::protocol
