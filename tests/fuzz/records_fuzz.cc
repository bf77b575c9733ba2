// tests/fuzz/records_fuzz.cc: the records mxscreen reads back from its state store (greylist
// triplets, client pass counts, bans). A store shared over the network (Redis) may hand back
// anything: a malformed record must read as "none", never crash, and a record that parses must
// print and parse back to the same value.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "checks/ban.h"
#include "checks/greylist.h"
#include "protocol/address.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::checks;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t now = in.ConsumeIntegral<int64_t>();
  std::string sender = in.ConsumeRandomLengthString(300);
  std::string recipient = in.ConsumeRandomLengthString(300);
  std::string text = in.ConsumeRemainingBytesAsString();
  GreylistPolicy policy;
  if (auto r = GreylistRecord::parse(text)) {
    auto again = GreylistRecord::parse(r->to_string());
    FUZZ_CHECK(again && again->first_seen == r->first_seen && again->last_seen == r->last_seen &&
               again->passed == r->passed);
  }
  (void)decide(text, now, policy);
  if (auto r = ClientPassRecord::parse(text)) {
    auto again = ClientPassRecord::parse(r->to_string());
    FUZZ_CHECK(again && again->count == r->count && again->last_counted == r->last_counted);
  }
  (void)client_allowlisted(text, policy);
  (void)count_client_pass(text, now, policy);
  if (auto b = BanRecord::parse(text)) {
    auto again = BanRecord::parse(b->to_string());
    FUZZ_CHECK(again && again->until == b->until && again->reason == b->reason);
  }
  (void)is_banned(text, now);
  auto client = mxscreen::protocol::IpAddress::v4(192, 0, 2, 7);
  std::string key = greylist_key(client, sender, recipient, policy);
  FUZZ_CHECK(!key.empty());
  return 0;
}
