// protocol/reply.h: SMTP replies (RFC 5321 section 4.2). Formatting of mxscreen's own replies,
// with an RFC 3463 enhanced status code, and an incremental, sans-I/O reader of the backend's
// replies (multi-line aware) used during handoff.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mxscreen::protocol {

// "550 5.7.1 text\r\n"; an empty `enhanced` gives "220 text\r\n". CR and LF inside `text`
// become spaces, so a reply is always exactly one line whatever the text came from.
std::string format_reply(int code, std::string_view enhanced, std::string_view text);
// "250-a\r\n250 b\r\n" (with `enhanced` after the code on every line when given). No lines
// gives one line with the code (and enhanced code) only.
std::string format_multiline_reply(int code, std::string_view enhanced,
                                   const std::vector<std::string>& lines);

// Reads one reply from a server: "NNN-text" continuation lines, then a "NNN text" (or bare
// "NNN") final line, all with the same code. Lines end in CRLF; a bare LF is accepted.
class ReplyReader {
 public:
  explicit ReplyReader(size_t max_bytes = 65536);

  enum class Status { kNeedMore, kDone, kInvalid };

  // Feeds the next bytes. `*consumed` is how many of *these* bytes were used: all of them on
  // kNeedMore (kept inside the reader), up to and including the final line's LF on kDone (the
  // rest belongs to whatever follows). kInvalid on a malformed line, a code change between
  // lines, or a reply longer than max_bytes. After kDone or kInvalid, feed() consumes nothing
  // and returns the same status until reset().
  Status feed(std::string_view bytes, size_t* consumed);

  int code() const { return code_; }
  // The text after "NNN-"/"NNN " of each line, without the line ending.
  const std::vector<std::string>& lines() const { return lines_; }
  // Ready for the next reply.
  void reset();

 private:
  // Takes one complete line (line ending stripped) and updates status_.
  void take_line(std::string_view line);

  size_t max_bytes_;
  size_t total_ = 0;  // bytes of the current reply seen so far
  std::string partial_;
  int code_ = 0;
  std::vector<std::string> lines_;
  Status status_ = Status::kNeedMore;
};

}  // namespace mxscreen::protocol
