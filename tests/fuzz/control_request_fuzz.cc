// tests/fuzz/control_request_fuzz.cc: the admin socket's request line (proxy/control's
// parse_control_request), framed as ControlServer frames it (up to the first LF, one CR
// before it dropped). An answer to a bad request is one printable "ERR ..." line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/control.h"
#include "tests/fuzz/fuzz_check.h"

using mxscreen::proxy::ControlRequest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string request(reinterpret_cast<const char*>(data), size);
  std::string line = request.substr(0, request.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ControlRequest r = mxscreen::proxy::parse_control_request(line);
  if (r.kind == ControlRequest::Kind::kInvalid) {
    FUZZ_CHECK(r.error.rfind("ERR ", 0) == 0);
    FUZZ_CHECK(r.error.find('\n') == r.error.size() - 1);
    for (size_t i = 0; i + 1 < r.error.size(); ++i) {
      FUZZ_CHECK(static_cast<unsigned char>(r.error[i]) >= 0x20 &&
                 static_cast<unsigned char>(r.error[i]) < 0x7f);
    }
  } else {
    FUZZ_CHECK(r.error.empty());
  }
  if (r.kind == ControlRequest::Kind::kBan) FUZZ_CHECK(r.duration.count() > 0);
  return 0;
}
