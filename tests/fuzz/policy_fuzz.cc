// tests/fuzz/policy_fuzz.cc: the Postfix policy delegation protocol parser (protocol/policy),
// fed whole and in fuzzer-chosen pieces: the same requests (or the same error) however the
// bytes arrive, memory held within max_request_bytes, attributes within their limits, and an
// answer that is always one attribute line.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "protocol/policy.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::protocol;

namespace {

struct Outcome {
  std::vector<std::vector<std::pair<std::string, std::string>>> requests;
  PolicyParse end = PolicyParse::kNeedMore;
};

Outcome run(const std::string& bytes, const std::vector<size_t>& chunks, PolicyLimits limits) {
  PolicyParser parser(limits);
  Outcome out;
  size_t pos = 0;
  size_t chunk = 0;
  while (pos < bytes.size()) {
    size_t n = chunk < chunks.size() ? chunks[chunk++] : bytes.size() - pos;
    n = std::min(std::max<size_t>(n, 1), bytes.size() - pos);
    parser.feed(std::string_view(bytes.data() + pos, n));
    pos += n;
    while (true) {
      PolicyRequest request;
      PolicyParse status = parser.next(&request);
      if (status == PolicyParse::kRequest) {
        FUZZ_CHECK(request.attributes.size() <= limits.max_attributes);
        for (const auto& [name, value] : request.attributes) {
          FUZZ_CHECK(!name.empty() && name.find('=') == std::string::npos);
          FUZZ_CHECK(name.find('\n') == std::string::npos && value.find('\n') == std::string::npos);
          FUZZ_CHECK(name.find('\0') == std::string::npos);
        }
        (void)request.get("client_address");
        out.requests.push_back(std::move(request.attributes));
        continue;
      }
      if (status == PolicyParse::kNeedMore) {
        FUZZ_CHECK(parser.buffered() <= limits.max_request_bytes);
        break;
      }
      out.end = status;  // the parser is spent; the server closes the connection
      return out;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  PolicyLimits limits;
  limits.max_request_bytes = in.ConsumeIntegralInRange<size_t>(16, 2048);
  limits.max_attributes = in.ConsumeIntegralInRange<size_t>(1, 40);
  std::vector<size_t> chunks;
  for (int i = in.ConsumeIntegralInRange(0, 16); i > 0; --i) {
    chunks.push_back(in.ConsumeIntegralInRange<size_t>(1, 64));
  }
  std::string bytes = in.ConsumeRemainingBytesAsString();
  Outcome whole = run(bytes, {}, limits);
  Outcome split = run(bytes, chunks, limits);
  std::vector<size_t> ones(std::min<size_t>(bytes.size(), 512), 1);
  Outcome bytewise = run(bytes, ones, limits);
  for (const Outcome* o : {&split, &bytewise}) {
    FUZZ_CHECK(o->requests == whole.requests);
    FUZZ_CHECK(o->end == whole.end);
  }
  std::string answer = format_policy_action(std::string_view(bytes).substr(0, 300));
  FUZZ_CHECK(answer.find('\n') == answer.size() - 2 && answer.back() == '\n');
  return 0;
}
