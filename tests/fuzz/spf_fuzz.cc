// tests/fuzz/spf_fuzz.cc: SPF evaluation (checks/spf.h) against DNS answers the fuzzer makes
// up: SPF records, explanations and names are whatever a sender domain's owner publishes, so
// any answer must end in a finding (no crash, no endless rounds) within the RFC 7208 limits,
// and the macro language must expand exactly what it accepts.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "checks/spf.h"
#include "checks/spf_record.h"
#include "protocol/address.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen;
using namespace mxscreen::checks;

namespace {

std::string value_for(FuzzedDataProvider& in, DnsRecordType type) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return in.ConsumeRandomLengthString(120);
    case 1:
      if (type == DnsRecordType::kA)
        return "192.0.2." + std::to_string(in.ConsumeIntegral<uint8_t>());
      if (type == DnsRecordType::kAAAA)
        return "2001:db8::" + std::to_string(in.ConsumeIntegral<uint8_t>());
      return "d" + std::to_string(in.ConsumeIntegralInRange<int>(0, 20)) + ".example.org";
    default:
      return "v=spf1 " + in.ConsumeRandomLengthString(200);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  SpfRequest request;
  request.client = in.ConsumeBool()
                       ? protocol::IpAddress::v4(192, 0, 2, in.ConsumeIntegral<uint8_t>())
                       : *protocol::IpAddress::parse("2001:db8::7");
  request.helo = in.ConsumeRandomLengthString(80);
  request.mail_from = in.ConsumeRandomLengthString(120);
  request.receiver = "mx.example.net";
  request.now = 1700000000;

  std::string text = in.ConsumeRandomLengthString(200);
  bool explanation = in.ConsumeBool();
  spf::MacroFacts facts;
  facts.sender = request.mail_from;
  facts.ip = request.client;
  FUZZ_CHECK(spf::valid_macro_string(text, explanation) ==
             spf::expand_macros(text, facts, explanation).has_value());
  (void)spf::parse_record(text);
  if (auto name = spf::lookup_name(text)) FUZZ_CHECK(name->size() <= 253);

  SpfCheck check(request);
  std::size_t rounds = 0;
  while (true) {
    auto progress = check.next();
    if (progress.done()) break;
    FUZZ_CHECK(!progress.questions.empty());
    FUZZ_CHECK(++rounds <= kSpfQuestionLimit);
    for (const DnsQuestion& q : progress.questions) {
      DnsReply reply;
      reply.status = static_cast<DnsReplyStatus>(in.ConsumeIntegralInRange<int>(0, 3));
      int n = in.ConsumeIntegralInRange<int>(0, 3);
      for (int i = 0; i < n; ++i) reply.values.push_back(value_for(in, q.type));
      check.answer(q, std::move(reply));
    }
  }
  FUZZ_CHECK(check.questions_asked() <= kSpfQuestionLimit + kSpfNameLimit);
  const SpfFinding f = *check.next().finding;
  FUZZ_CHECK(f.lookups <= kSpfLookupLimit + 1);
  FUZZ_CHECK(f.void_lookups <= kSpfVoidLookupLimit + 1);
  if (f.result == SpfResult::kPass || f.result == SpfResult::kFail ||
      f.result == SpfResult::kSoftFail || f.result == SpfResult::kNeutral) {
    FUZZ_CHECK(!f.mechanism.empty());
  }
  if (f.result != SpfResult::kFail) FUZZ_CHECK(f.explanation.empty());
  return 0;
}
