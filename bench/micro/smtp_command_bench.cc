// bench/micro/smtp_command_bench.cc: the per-command cost of the SMTP front end: parsing a
// command line and its RCPT TO argument, and framing a pipelined burst of ten commands.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "protocol/line_reader.h"
#include "protocol/smtp_command.h"

namespace mxscreen::protocol {
namespace {

constexpr std::string_view kRcptLine =
    "RCPT TO:<someone@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;someone@example.org";

void BM_ParseCommandAndRcpt(benchmark::State& state) {
  std::string error;
  for (auto _ : state) {
    Command cmd = parse_command(kRcptLine);
    auto args = parse_rcpt_to(cmd.argument, &error);
    benchmark::DoNotOptimize(args);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseCommandAndRcpt);

void BM_ParseCommandOnly(benchmark::State& state) {
  for (auto _ : state) {
    Command cmd = parse_command(kRcptLine);
    benchmark::DoNotOptimize(cmd);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseCommandOnly);

void BM_LineReaderPipelinedBurst(benchmark::State& state) {
  const std::string burst =
      "EHLO client.example.org\r\n"
      "MAIL FROM:<sender@example.com> SIZE=12345 BODY=8BITMIME\r\n"
      "RCPT TO:<a@example.org>\r\n"
      "RCPT TO:<b@example.org>\r\n"
      "RCPT TO:<c@example.org>\r\n"
      "DATA\r\n"
      "RSET\r\n"
      "NOOP\r\n"
      "VRFY postmaster\r\n"
      "QUIT\r\n";
  LineReader reader;
  for (auto _ : state) {
    reader.feed(burst);
    int lines = 0;
    while (auto line = reader.next()) ++lines;
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * burst.size()));
  state.SetItemsProcessed(state.iterations() * 10);
}
BENCHMARK(BM_LineReaderPipelinedBurst);

}  // namespace
}  // namespace mxscreen::protocol
