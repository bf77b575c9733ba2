// protocol/line_reader.h: SMTP line framing (RFC 5321 section 2.3.8), sans-I/O. Fed raw bytes,
// gives back complete lines without their ending, flagged for bare LF, NUL bytes and overlength
// (smtp.line_length_limit, as Postfix's line_length_limit). Memory is bounded by two limits.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxscreen::protocol {

struct Line {
  std::string text;       // without the line ending
  bool bare_lf = false;   // ended in LF without CR (the bare_newline test)
  bool too_long = false;  // longer than the limit: text holds the first `limit` bytes, the rest
                          // up to the next LF was discarded
  bool has_nul = false;   // a NUL byte anywhere in the line (also in a discarded tail)
};

// Memory held is at most limit + 1 bytes of partial line plus max_queued complete lines of at
// most `limit` bytes each: a 1 MB line never buffers more than `limit` bytes. A CR not followed
// by LF stays in the text; only LF ends a line.
class LineReader {
 public:
  static constexpr size_t kDefaultLimit = 2048;  // Postfix's line_length_limit
  static constexpr size_t kDefaultMaxQueued = 1000;

  explicit LineReader(size_t limit = kDefaultLimit, size_t max_queued = kDefaultMaxQueued);

  // Takes bytes until max_queued complete lines are waiting, and returns how many of `bytes` it
  // took. Less than bytes.size() means the queue is full: the caller keeps the rest, stops
  // reading from the client (back-pressure) and feeds the rest again after draining next().
  size_t feed(std::string_view bytes);
  // The oldest complete line, or nullopt when none is complete yet.
  std::optional<Line> next();
  // A complete line is waiting: input arrived behind the current command (pipelining test).
  bool has_pending_line() const { return head_ < queue_.size(); }
  // No more bytes are taken until next() is called.
  bool full() const { return queue_.size() - head_ >= max_queued_; }
  // Bytes held: the partial line plus the text of queued complete lines.
  size_t buffered() const { return partial_.size() + queued_bytes_; }
  // Drops everything held, complete and partial (after STARTTLS, RFC 3207 section 4.2: any
  // plaintext pipelined behind STARTTLS must be discarded).
  void clear();
  // Hands back everything not yet returned by next() as bytes, and clears (handoff: the client's
  // pipelined input goes to the backend). Queued lines get their own ending back (CRLF, or LF
  // for a bare LF), the partial line follows as received. A too_long line's discarded tail
  // cannot be given back: only its first `limit` bytes are.
  std::string take_unprocessed();
  // The first `max` bytes of what is held, as they came, without taking them (for a log
  // line about early input).
  std::string peek(size_t max) const;

 private:
  // Adds bytes that contain no LF to the current line.
  void append(std::string_view segment);
  // The LF arrived: moves the current line to the queue.
  void finish_line();

  size_t limit_;
  size_t max_queued_;
  std::string partial_;       // at most limit_ + 1 bytes: the extra one may be the CR of a CRLF
  bool discarding_ = false;   // partial_ overflowed; dropping bytes up to the next LF
  bool last_was_cr_ = false;  // the last byte seen of the current line was CR
  bool has_nul_ = false;
  // Complete lines not yet returned are queue_[head_..]. A vector, not a std::deque: libstdc++'s
  // deque allocates over half a KiB when it is made, empty, and every client in the dialogue
  // has a reader (issue 15: 10,000 clients ending their greet wait at once).
  std::vector<Line> queue_;
  size_t head_ = 0;
  size_t queued_bytes_ = 0;
};

}  // namespace mxscreen::protocol
