// protocol/line_reader.cc: SMTP line framing with a length limit and a bounded queue of complete
// lines. An overlong line keeps its first `limit` bytes and drops the rest up to its LF, so a
// client sending one endless line costs at most `limit` bytes.
#include "protocol/line_reader.h"

#include <cstring>

namespace mxscreen::protocol {

LineReader::LineReader(size_t limit, size_t max_queued)
    : limit_(limit), max_queued_(max_queued == 0 ? 1 : max_queued) {}

size_t LineReader::feed(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size() && !full()) {
    size_t lf = bytes.find('\n', pos);
    if (lf == std::string_view::npos) {
      append(bytes.substr(pos));
      return bytes.size();
    }
    append(bytes.substr(pos, lf - pos));
    finish_line();
    pos = lf + 1;
  }
  return pos;
}

void LineReader::append(std::string_view segment) {
  if (segment.empty()) return;
  if (std::memchr(segment.data(), '\0', segment.size()) != nullptr) has_nul_ = true;
  last_was_cr_ = segment.back() == '\r';
  if (discarding_) return;
  size_t room = limit_ + 1 - partial_.size();
  bool overflow = segment.size() > room;
  partial_.append(segment.substr(0, room));
  // limit_ + 1 bytes are fine only while the last one may still be the CR of a CRLF.
  if (partial_.size() == limit_ + 1 && (overflow || partial_.back() != '\r')) {
    partial_.resize(limit_);
    discarding_ = true;
  }
}

void LineReader::finish_line() {
  Line line;
  line.bare_lf = !last_was_cr_;
  line.too_long = discarding_;
  line.has_nul = has_nul_;
  if (!discarding_ && last_was_cr_) partial_.pop_back();
  line.text = std::move(partial_);
  queued_bytes_ += line.text.size();
  if (head_ > 0 && queue_.size() == queue_.capacity()) {
    // Reuse the room of the lines already returned before growing.
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  queue_.push_back(std::move(line));
  partial_.clear();
  discarding_ = false;
  last_was_cr_ = false;
  has_nul_ = false;
}

std::optional<Line> LineReader::next() {
  if (head_ == queue_.size()) return std::nullopt;
  Line line = std::move(queue_[head_++]);
  if (head_ == queue_.size()) {
    queue_.clear();
    head_ = 0;
  }
  queued_bytes_ -= line.text.size();
  return line;
}

void LineReader::clear() {
  partial_.clear();
  partial_.shrink_to_fit();
  discarding_ = false;
  last_was_cr_ = false;
  has_nul_ = false;
  queue_.clear();
  head_ = 0;
  queued_bytes_ = 0;
}

std::string LineReader::take_unprocessed() {
  std::string out;
  out.reserve(buffered() + 2 * (queue_.size() - head_));
  for (size_t i = head_; i < queue_.size(); ++i) {
    const Line& line = queue_[i];
    out += line.text;
    out += line.bare_lf ? "\n" : "\r\n";
  }
  out += partial_;
  clear();
  return out;
}

std::string LineReader::peek(size_t max) const {
  std::string out;
  for (size_t i = head_; i < queue_.size(); ++i) {
    const Line& line = queue_[i];
    if (out.size() >= max) break;
    out += line.text;
    out += line.bare_lf ? "\n" : "\r\n";
  }
  if (out.size() < max) out += partial_;
  if (out.size() > max) out.resize(max);
  return out;
}

}  // namespace mxscreen::protocol
