// protocol/command_stream.cc: see command_stream.h. Where mxscreen and the backend could read
// the same bytes differently, the code errs towards reading them as commands (checked) rather
// than as content (passed unread): verbs are found past any leading control bytes and end at
// any control byte, content starts only on the backend's own 354, and a BDAT chunk only on a
// strictly formed line the backend reads the same way. Postfix 3.7 behaviours matched here
// were checked against the real smtpd: it ends DATA at "." followed by any CRs and a LF (bare
// LF included), reads one command per LF (a longer line is cut at line_length_limit and the
// rest skipped), skips leading whitespace before the verb, and reads a rejected BDAT's chunk.
#include "protocol/command_stream.h"

#include <algorithm>
#include <cstring>

namespace mxscreen::protocol {
namespace {

constexpr std::string_view kInsufficientAuthorization =
    "550 5.7.0 Error: insufficient authorization\r\n";  // Postfix's reply to an unauthorized
                                                        // XCLIENT or XFORWARD
constexpr std::string_view kNotImplemented = "502 5.5.1 Error: command not implemented\r\n";
constexpr std::string_view kLineTooLong = "500 5.5.2 Error: line too long\r\n";
constexpr std::string_view kReadyToStartTls = "220 2.0.0 Ready to start TLS\r\n";

bool is_separator(unsigned char c) { return c <= 0x20 || c == 0x7f; }
bool is_blank(char c) { return c == ' ' || c == '\t'; }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool istarts_with(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (to_upper(text[i]) != prefix[i]) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && istarts_with(a, b);
}

// "BDAT <count> [LAST]" exactly as Postfix's bdat_cmd reads it (spaces or tabs between the
// words, trailing CRs stripped), with at most 18 digits; anything else is not a chunk start.
bool parse_bdat(std::string_view line, uint64_t* count) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.size() > CommandStream::kMaxBdatLine) return false;
  size_t pos = 0;
  auto skip_blanks = [&] {
    size_t start = pos;
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    return pos > start;
  };
  skip_blanks();
  if (!istarts_with(line.substr(pos), "BDAT")) return false;
  pos += 4;
  if (!skip_blanks()) return false;
  size_t digits = 0;
  uint64_t value = 0;
  while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') {
    value = value * 10 + static_cast<uint64_t>(line[pos] - '0');
    ++pos;
    if (++digits > 18) return false;
  }
  if (digits == 0) return false;
  if (skip_blanks() && istarts_with(line.substr(pos), "LAST")) {
    pos += 4;
    skip_blanks();
  }
  if (pos != line.size()) return false;
  *count = value;
  return true;
}

// The keyword of an EHLO reply line ("250-XCLIENT NAME ADDR\r\n" -> "XCLIENT").
std::string_view ehlo_keyword(std::string_view line) {
  if (line.size() < 4) return {};
  line.remove_prefix(4);
  size_t end = 0;
  while (end < line.size() && !is_separator(static_cast<unsigned char>(line[end]))) ++end;
  return line.substr(0, end);
}

int reply_code(std::string_view line) {
  if (line.size() < 3) return 0;
  int code = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (line[i] < '0' || line[i] > '9') return 0;
    code = code * 10 + (line[i] - '0');
  }
  return code;
}

CommandStream::Action wait_action(size_t consumed) {
  CommandStream::Action a;
  a.kind = CommandStream::Action::Kind::kWait;
  a.consumed = consumed;
  return a;
}

CommandStream::Action forward_action(std::string_view bytes, size_t consumed) {
  CommandStream::Action a;
  a.kind = CommandStream::Action::Kind::kForward;
  a.forward = bytes;
  a.consumed = consumed;
  return a;
}

}  // namespace

CommandStream::CommandStream(Options options) : options_(options) {}

CommandStream::Classified CommandStream::classify(std::string_view line) const {
  Classified c;
  size_t start = 0;
  while (start < line.size() && is_separator(static_cast<unsigned char>(line[start]))) ++start;
  std::string_view rest = line.substr(start);
  if (istarts_with(rest, "XCLIENT")) return {Class::kRefuse, Refused::kXclient, 0};
  if (istarts_with(rest, "XFORWARD")) return {Class::kRefuse, Refused::kXforward, 0};
  size_t end = 0;
  while (end < rest.size() && !is_separator(static_cast<unsigned char>(rest[end]))) ++end;
  std::string_view verb = rest.substr(0, end);
  // mxscreen cannot read what the client and the backend say inside a TLS session of theirs.
  if (iequals(verb, "STARTTLS")) return {Class::kRefuse, Refused::kStarttls, 0};
  if (iequals(verb, "DATA")) c.what = Class::kData;
  if (iequals(verb, "EHLO")) c.what = Class::kEhlo;
  if (iequals(verb, "BDAT") && options_.chunking && parse_bdat(line, &c.chunk)) {
    c.what = Class::kBdat;
  }
  return c;
}

CommandStream::Action CommandStream::next(std::string_view input) {
  out_.clear();
  if (data_wait_) return wait_action(0);
  if (mode_ == Mode::kData) return input.empty() ? Action{} : scan_data(input);
  if (mode_ == Mode::kChunk) {
    if (input.empty()) return Action{};
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_left_, input.size()));
    chunk_left_ -= n;
    if (chunk_left_ == 0) mode_ = Mode::kCommand;
    return forward_action(input.substr(0, n), n);
  }
  if (line_ready_) return take_line(line_, 0, line_too_long_);
  if (!line_.empty() || line_too_long_) return accumulate(input);

  // Fast path: whole ordinary lines at the front of the input go out as one write.
  size_t pos = 0;
  while (pos < input.size() && expect_.size() < options_.max_in_flight) {
    const void* lf = std::memchr(input.data() + pos, '\n', input.size() - pos);
    if (!lf) break;
    size_t end = static_cast<size_t>(static_cast<const char*>(lf) - input.data()) + 1;
    if (end - pos - 1 > options_.line_limit) break;
    Classified c = classify(input.substr(pos, end - pos));
    if (c.what != Class::kOrdinary && c.what != Class::kEhlo) break;
    expect_.push_back(c.what == Class::kEhlo ? Expect::kEhlo : Expect::kOther);
    pos = end;
  }
  if (pos > 0) return forward_action(input.substr(0, pos), pos);
  if (input.empty()) return Action{};
  const void* lf = std::memchr(input.data(), '\n', input.size());
  if (!lf) return accumulate(input);
  size_t end = static_cast<size_t>(static_cast<const char*>(lf) - input.data()) + 1;
  if (end - 1 > options_.line_limit) return accumulate(input);
  return take_line(input.substr(0, end), end, false);
}

CommandStream::Action CommandStream::accumulate(std::string_view input) {
  const void* lf = std::memchr(input.data(), '\n', input.size());
  size_t used =
      lf ? static_cast<size_t>(static_cast<const char*>(lf) - input.data()) + 1 : input.size();
  size_t text = lf ? used - 1 : used;  // without the LF
  if (!line_too_long_) {
    if (line_.size() + text > options_.line_limit) {
      line_too_long_ = true;
      line_.append(input.substr(0, options_.line_limit - line_.size()));
    } else {
      line_.append(input.substr(0, used));
    }
  }
  if (!lf) {
    Action a;
    a.consumed = used;
    return a;
  }
  line_ready_ = true;
  Action a = take_line(line_, used, line_too_long_);
  return a;
}

CommandStream::Action CommandStream::take_line(std::string_view line, size_t consumed,
                                               bool too_long) {
  bool buffered = line.data() == line_.data();
  Classified c = too_long ? Classified{Class::kRefuse, Refused::kLineTooLong, 0} : classify(line);
  // Replies go out in command order: mxscreen answers only when every earlier command has
  // had its reply from the backend, and forwards only within max_in_flight.
  bool must_wait =
      c.what == Class::kRefuse ? !expect_.empty() : expect_.size() >= options_.max_in_flight;
  if (must_wait) return wait_action(buffered ? consumed : 0);
  if (buffered) {
    out_ = std::move(line_);
    line_.clear();
    line_ready_ = false;
    line_too_long_ = false;
    line = out_;
  }
  if (c.refused == Refused::kStarttls && options_.offer_starttls) {
    Action a;
    a.kind = Action::Kind::kStartTls;
    a.consumed = consumed;
    a.line = line;
    a.reply = kReadyToStartTls;
    options_.offer_starttls = false;  // once per session (RFC 3207 4.2)
    return a;
  }
  if (c.what == Class::kRefuse) {
    Action a;
    a.kind = Action::Kind::kAnswer;
    a.consumed = consumed;
    a.refused = c.refused;
    a.line = line;
    a.reply = c.refused == Refused::kStarttls      ? kNotImplemented
              : c.refused == Refused::kLineTooLong ? kLineTooLong
                                                   : kInsufficientAuthorization;
    return a;
  }
  switch (c.what) {
    case Class::kData:
      expect_.push_back(Expect::kData);
      data_wait_ = true;
      break;
    case Class::kBdat:
      expect_.push_back(Expect::kOther);
      chunk_left_ = c.chunk;
      if (chunk_left_ > 0) mode_ = Mode::kChunk;
      break;
    case Class::kEhlo:
      expect_.push_back(Expect::kEhlo);
      break;
    default:
      expect_.push_back(Expect::kOther);
      break;
  }
  return forward_action(line, consumed);
}

// Message content after the backend's 354: forwarded as is; only the end-of-data line is
// looked for (a "." line start, any CRs, a LF), one memchr per line.
CommandStream::Action CommandStream::scan_data(std::string_view input) {
  const char* data = input.data();
  size_t n = input.size();
  size_t i = 0;
  while (i < n) {
    if (dot_) {
      char c = data[i];
      if (c == '\r') {
        ++i;
        continue;
      }
      dot_ = false;
      line_start_ = false;
      if (c == '\n') {
        ++i;
        mode_ = Mode::kCommand;
        line_start_ = true;
        expect_.push_back(Expect::kOther);  // the reply to the whole message
        return forward_action(input.substr(0, i), i);
      }
    } else if (line_start_) {
      line_start_ = false;
      if (data[i] == '.') {
        dot_ = true;
        ++i;
        continue;
      }
    }
    const void* lf = std::memchr(data + i, '\n', n - i);
    if (!lf) {
      i = n;
      break;
    }
    i = static_cast<size_t>(static_cast<const char*>(lf) - data) + 1;
    line_start_ = true;
  }
  return forward_action(input, n);
}

CommandStream::ReplyStatus CommandStream::backend_bytes(std::string_view input,
                                                        std::string* to_client) {
  while (!input.empty()) {
    const void* lf = std::memchr(input.data(), '\n', input.size());
    if (!lf) {
      if (reply_line_.size() + input.size() > kMaxReplyBytes) return ReplyStatus::kInvalid;
      reply_line_.append(input);
      return ReplyStatus::kOk;
    }
    size_t end = static_cast<size_t>(static_cast<const char*>(lf) - input.data()) + 1;
    std::string_view line = input.substr(0, end);
    if (!reply_line_.empty()) {
      reply_line_.append(line);
      line = reply_line_;
    }
    input.remove_prefix(end);
    bool continued = line.size() >= 4 && line[3] == '-';
    bool ehlo = !expect_.empty() && expect_.front() == Expect::kEhlo;
    if (continued || !reply_lines_.empty() || ehlo) {
      reply_bytes_ += line.size();
      if (reply_bytes_ > kMaxReplyBytes) return ReplyStatus::kInvalid;
      reply_lines_.emplace_back(line);
      if (!continued) emit_reply(to_client);
    } else {
      to_client->append(line);
      reply_done(reply_code(line), false);
    }
    reply_line_.clear();
  }
  return ReplyStatus::kOk;
}

void CommandStream::emit_reply(std::string* to_client) {
  int code = reply_code(reply_lines_.front());
  bool chunking = false;
  size_t kept = 0;
  bool final_dropped = false;
  for (size_t i = 0; i < reply_lines_.size(); ++i) {
    std::string_view keyword = ehlo_keyword(reply_lines_[i]);
    // The first line is the server's name, never a keyword. XCLIENT and XFORWARD are for
    // mxscreen only; STARTTLS is answered by mxscreen (classify()).
    if (i > 0 && code == 250 &&
        (iequals(keyword, "XCLIENT") || iequals(keyword, "XFORWARD") ||
         iequals(keyword, "STARTTLS"))) {
      final_dropped = i + 1 == reply_lines_.size();
      continue;
    }
    if (i > 0 && iequals(keyword, "CHUNKING")) chunking = true;
    if (kept != i) reply_lines_[kept] = std::move(reply_lines_[i]);
    ++kept;
  }
  // Every line but the last was a "NNN-" continuation: when the final one was dropped, the
  // last line kept ends the reply.
  reply_lines_.resize(kept);
  if (final_dropped) reply_lines_.back()[3] = ' ';
  bool ehlo = !expect_.empty() && expect_.front() == Expect::kEhlo;
  if (ehlo && code == 250 && options_.offer_starttls && reply_lines_.back().size() >= 3) {
    // mxscreen's own STARTTLS, as the last keyword.
    std::string& last = reply_lines_.back();
    std::string ending = last.size() >= 2 && last[last.size() - 2] == '\r' ? "\r\n" : "\n";
    if (last.size() >= 4 && (last[3] == ' ' || last[3] == '-')) {
      last[3] = '-';
    } else {  // a bare "250": give it the separator the next line needs
      last = last.substr(0, 3) + "-" + last.substr(3);
    }
    reply_lines_.push_back(last.substr(0, 3) + " STARTTLS" + ending);
  }
  for (const auto& line : reply_lines_) to_client->append(line);
  reply_lines_.clear();
  reply_bytes_ = 0;
  reply_done(code, chunking);
}

void CommandStream::reply_done(int code, bool chunking_offered) {
  if (expect_.empty()) return;  // unsolicited (a 421 before the backend closes)
  Expect e = expect_.front();
  expect_.pop_front();
  if (e == Expect::kEhlo) options_.chunking = code == 250 && chunking_offered;
  if (e == Expect::kData) {
    data_wait_ = false;
    if (code == 354) {
      mode_ = Mode::kData;
      line_start_ = true;
      dot_ = false;
    }
  }
}

}  // namespace mxscreen::protocol
