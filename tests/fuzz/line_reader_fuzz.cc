// tests/fuzz/line_reader_fuzz.cc: SMTP line framing (protocol/line_reader) fed the same bytes
// whole and split at fuzzer-chosen points: the lines must be the same however the bytes
// arrive, every line within the limit, and the memory held within the reader's bounds.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/line_reader.h"
#include "tests/fuzz/fuzz_check.h"

using mxscreen::protocol::Line;
using mxscreen::protocol::LineReader;

namespace {

struct Run {
  std::vector<Line> lines;
  std::string rest;  // take_unprocessed() at the end
};

// Feeds `bytes` in the given chunk sizes (the last chunk takes what is left), draining the
// queue whenever the reader stops taking bytes, as the session does.
Run feed(const std::string& bytes, const std::vector<size_t>& chunks, size_t limit,
         size_t max_queued) {
  LineReader reader(limit, max_queued);
  Run run;
  size_t pos = 0;
  size_t chunk = 0;
  while (pos < bytes.size()) {
    size_t n = chunk < chunks.size() ? chunks[chunk++] : bytes.size() - pos;
    n = std::min(n, bytes.size() - pos);
    std::string_view piece(bytes.data() + pos, n);
    while (!piece.empty()) {
      size_t taken = reader.feed(piece);
      FUZZ_CHECK(taken <= piece.size());
      FUZZ_CHECK(reader.buffered() <= (limit + 1) + limit * max_queued);
      piece.remove_prefix(taken);
      if (!piece.empty()) FUZZ_CHECK(reader.full());
      if (n > 1) (void)reader.peek(64);
      while (auto line = reader.next()) {
        FUZZ_CHECK(line->text.size() <= limit);
        FUZZ_CHECK(line->text.find('\n') == std::string::npos);
        run.lines.push_back(std::move(*line));
      }
    }
    pos += n;
  }
  run.rest = reader.take_unprocessed();
  FUZZ_CHECK(reader.buffered() == 0);
  return run;
}

bool same(const Line& a, const Line& b) {
  return a.text == b.text && a.bare_lf == b.bare_lf && a.too_long == b.too_long &&
         a.has_nul == b.has_nul;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  size_t limit = in.ConsumeIntegralInRange<size_t>(1, 300);
  size_t max_queued = in.ConsumeIntegralInRange<size_t>(1, 8);
  std::vector<size_t> chunks;
  for (int i = in.ConsumeIntegralInRange(0, 16); i > 0; --i) {
    chunks.push_back(in.ConsumeIntegralInRange<size_t>(0, 64));
  }
  std::string bytes = in.ConsumeRemainingBytesAsString();

  Run whole = feed(bytes, {}, limit, max_queued);
  Run split = feed(bytes, chunks, limit, max_queued);
  // Split at every byte too (bounded: a byte per feed costs the most per input).
  std::vector<size_t> ones(std::min<size_t>(bytes.size(), 1024), 1);
  Run bytewise = feed(bytes, ones, limit, max_queued);
  for (const Run* r : {&split, &bytewise}) {
    FUZZ_CHECK(r->lines.size() == whole.lines.size());
    for (size_t i = 0; i < whole.lines.size(); ++i) FUZZ_CHECK(same(r->lines[i], whole.lines[i]));
    FUZZ_CHECK(r->rest == whole.rest);
  }
  // A line that fit gives back exactly what was sent.
  if (whole.rest.empty() && !bytes.empty() && bytes.back() == '\n') {
    std::string again;
    bool any_long = false;
    for (const auto& l : whole.lines) {
      any_long |= l.too_long;
      again += l.text + (l.bare_lf ? "\n" : "\r\n");
    }
    if (!any_long) FUZZ_CHECK(again == bytes);
  }
  return 0;
}
