// tests/fuzz/config_fuzz.cc: the config loader (proxy/config) on any text: a config, or
// errors that each name the file (and a line:col where there is one), never a crash.
// tomlplusplus 3.3.0 has two assertions reachable from bad input (upstream PRs #301, #305);
// they are compiled out here as in every release build (NDEBUG).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = mxscreen::proxy::parse_config(text, "fuzz.toml");
  FUZZ_CHECK(result.ok() == result.errors.empty());
  for (const auto& e : result.errors) {
    FUZZ_CHECK(e.to_string().rfind("fuzz.toml:", 0) == 0);
    FUZZ_CHECK(!e.message.empty());
    FUZZ_CHECK(e.line >= 0 && e.column >= 0);
  }
  if (size < 64) (void)mxscreen::proxy::parse_duration(text);
  return 0;
}
