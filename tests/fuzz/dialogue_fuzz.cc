// tests/fuzz/dialogue_fuzz.cc: the pre-dialogue engine (checks/dialogue) fed a client's byte
// stream through the line reader, as Session::run_dialogue does, under a fuzzer-chosen policy.
// Every reply is well-formed SMTP (3-digit codes, CRLF lines, nothing the client sent breaking
// a line) and every log event is plain printable text.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "checks/dialogue.h"
#include "protocol/escape.h"
#include "protocol/line_reader.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::checks;
using Then = Step::Then;

namespace {

Action action(FuzzedDataProvider& in) {
  static constexpr Action kActions[] = {Action::kOff, Action::kIgnore, Action::kEnforce,
                                        Action::kDrop};
  return kActions[in.ConsumeIntegralInRange(0, 3)];
}

void check_step(const Step& step) {
  const std::string r = step.sent();
  size_t start = 0;
  while (start < r.size()) {
    size_t end = r.find("\r\n", start);
    if (end == std::string::npos)
      std::fprintf(stderr, "reply: %s\n", mxscreen::protocol::printable(r, 400).c_str());
    FUZZ_CHECK(end != std::string::npos);
    std::string_view line(r.data() + start, end - start);
    FUZZ_CHECK(line.size() >= 3);
    for (int i = 0; i < 3; ++i) FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
    FUZZ_CHECK(line.size() == 3 || line[3] == ' ' || line[3] == '-');
    for (unsigned char c : line) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    start = end + 2;
  }
  for (const auto& f : step.findings) {
    for (unsigned char c : f.detail) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  }
  FUZZ_CHECK(step.delay.count() >= 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  DialoguePolicy p;
  DialogueClient c;
  p.hostname = "mx.test";
  c.address = *mxscreen::protocol::IpAddress::parse("192.0.2.7");
  c.port = 4711;
  p.capabilities = {"SIZE 10240000", "8BITMIME", "SMTPUTF8"};
  p.helo_required = in.ConsumeBool();
  p.disable_vrfy = in.ConsumeBool();
  p.command_count_limit = in.ConsumeIntegralInRange(0, 30);
  p.pipelining = action(in);
  p.non_smtp_command = action(in);
  p.bare_newline = action(in);
  p.helo.reject_invalid = in.ConsumeBool();
  p.helo.reject_non_fqdn = in.ConsumeBool();
  p.sender_reject_non_fqdn = in.ConsumeBool();
  p.recipient_reject_non_fqdn = in.ConsumeBool();
  p.errors.soft_limit = in.ConsumeIntegralInRange(0, 5);
  p.errors.hard_limit = in.ConsumeIntegralInRange(1, 10);
  p.errors.junk_command_limit = in.ConsumeIntegralInRange(0, 5);
  p.offer_starttls = in.ConsumeBool();
  p.handoff_after_helo = in.ConsumeBool();
  c.tempfail_rcpt = in.ConsumeBool();
  if (in.ConsumeBool()) c.enforced_by = "pregreet";
  if (in.ConsumeBool())
    c.client_reject = "450 4.7.1 Client host rejected: cannot find your reverse hostname";
  const size_t line_limit = in.ConsumeIntegralInRange<size_t>(16, 512);
  const uint8_t handoff_choice = in.ConsumeIntegral<uint8_t>();
  std::string bytes = in.ConsumeRemainingBytesAsString();

  Dialogue dialogue(std::make_shared<const DialoguePolicy>(std::move(p)), std::move(c));
  mxscreen::protocol::LineReader reader(line_limit, 100);
  std::string_view rest(bytes);
  int handoffs = 0;
  while (true) {
    size_t taken = reader.feed(rest);
    rest.remove_prefix(taken);
    auto line = reader.next();
    if (!line) break;
    std::string early = reader.peek(100);
    Step step = dialogue.on_line(*line, early);
    check_step(step);
    if (step.closes()) return 0;
    if (step.then == Then::kStartTls) {
      reader.clear();  // RFC 3207 4.2: plaintext behind STARTTLS is dropped
      dialogue.reset_after_starttls();
    } else if (step.then == Then::kHandoff) {
      FUZZ_CHECK(!dialogue.helo().empty() || !p.helo_required || p.handoff_after_helo);
      // The session holds the handoff back (greylisting, a DNS test of a name) or goes on.
      switch ((handoff_choice >> (2 * (handoffs++ % 4))) & 3) {
        case 0:
          return 0;  // handed off: the backend takes it from here
        case 1:
          check_step(
              dialogue.refuse_handoff("450 4.2.0 <x@y>: Recipient address rejected: Greylisted"));
          break;
        default: {
          Step s = dialogue.reject_held_rcpt(
              "450 4.1.2 <x@y>: Recipient address rejected: Domain not found", "recipient");
          check_step(s);
          if (s.closes()) return 0;
        }
      }
    }
  }
  check_step(dialogue.on_time_limit());
  return 0;
}
