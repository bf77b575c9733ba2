// tests/fuzz/reply_fuzz.cc: the backend's replies (protocol/reply's ReplyReader, as the
// handoff and the backend probe read them) and the EHLO capability filter (protocol/ehlo)
// applied to them. A stream of replies must read the same whole and split, and the reader
// must never take more than its bound.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/ehlo.h"
#include "protocol/reply.h"
#include "tests/fuzz/fuzz_check.h"

using mxscreen::protocol::ReplyReader;
using Status = ReplyReader::Status;

namespace {

struct Outcome {
  std::vector<int> codes;
  std::vector<std::vector<std::string>> lines;
  bool invalid = false;
};

Outcome read_all(const std::string& bytes, const std::vector<size_t>& chunks, size_t max_bytes) {
  Outcome out;
  ReplyReader reader(max_bytes);
  size_t pos = 0;
  size_t chunk = 0;
  while (pos < bytes.size()) {
    size_t n = chunk < chunks.size() ? chunks[chunk++] : bytes.size() - pos;
    n = std::min(std::max<size_t>(n, 1), bytes.size() - pos);
    std::string_view piece(bytes.data() + pos, n);
    while (!piece.empty()) {
      size_t consumed = 0;
      Status status = reader.feed(piece, &consumed);
      FUZZ_CHECK(consumed <= piece.size());
      if (status == Status::kNeedMore) {
        FUZZ_CHECK(consumed == piece.size());
      } else if (status == Status::kInvalid) {
        out.invalid = true;
        return out;
      } else {
        FUZZ_CHECK(reader.code() >= 100 && reader.code() <= 999);
        out.codes.push_back(reader.code());
        out.lines.push_back(reader.lines());
        (void)mxscreen::protocol::mirror_capabilities(reader.lines(), true);
        (void)mxscreen::protocol::mirror_capabilities(reader.lines(), false);
        reader.reset();
      }
      piece.remove_prefix(consumed);
    }
    pos += n;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  size_t max_bytes = in.ConsumeIntegralInRange<size_t>(4, 600);
  std::vector<size_t> chunks;
  for (int i = in.ConsumeIntegralInRange(0, 16); i > 0; --i) {
    chunks.push_back(in.ConsumeIntegralInRange<size_t>(1, 40));
  }
  std::string bytes = in.ConsumeRemainingBytesAsString();
  Outcome whole = read_all(bytes, {}, max_bytes);
  Outcome split = read_all(bytes, chunks, max_bytes);
  FUZZ_CHECK(whole.invalid == split.invalid);
  FUZZ_CHECK(whole.codes == split.codes);
  FUZZ_CHECK(whole.lines == split.lines);
  // mxscreen's own replies are single lines whatever text went in.
  std::string text(bytes.substr(0, 200));
  std::string reply = mxscreen::protocol::format_reply(550, "5.7.1", text);
  FUZZ_CHECK(reply.size() >= 2 && reply.find('\n') == reply.size() - 1);
  FUZZ_CHECK(reply.find('\r') == reply.size() - 2);
  return 0;
}
