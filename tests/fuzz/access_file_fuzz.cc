// tests/fuzz/access_file_fuzz.cc: the admin's list files (access.file in postscreen cidr
// format, greylist client and recipient allowlists): a bad file gives line:column errors and
// the good lines, never a crash. The lists are then asked about a client and a recipient.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "checks/access.h"
#include "checks/greylist_allowlist.h"
#include "protocol/address.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::checks;
using mxscreen::protocol::IpAddress;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // Client-chosen texts stay short: std::regex recurses per character (see the report).
  std::string name = in.ConsumeRandomLengthString(64);
  std::string recipient = in.ConsumeRandomLengthString(64);
  auto a = in.ConsumeIntegral<uint8_t>();
  std::string text = in.ConsumeRemainingBytesAsString();
  std::vector<AccessFileError> errors;
  auto rules = parse_access_file(text, &errors);
  for (const auto& e : errors) FUZZ_CHECK(e.line >= 1 && e.column >= 1 && !e.message.empty());
  AccessList list(std::move(rules), {}, {});
  (void)list.decide(IpAddress::v4(192, 0, 2, a));
  errors.clear();
  auto clients = ClientAllowlist::parse(text, &errors);
  for (const auto& e : errors) FUZZ_CHECK(e.line >= 1 && e.column >= 1 && !e.message.empty());
  std::string why;
  (void)clients.matches(IpAddress::v4(192, 0, 2, a), name, &why);
  errors.clear();
  auto recipients = RecipientAllowlist::parse(text, &errors);
  for (const auto& e : errors) FUZZ_CHECK(e.line >= 1 && e.column >= 1 && !e.message.empty());
  (void)recipients.matches(recipient, &why);
  return 0;
}
