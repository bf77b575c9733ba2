// bench/micro/command_stream_bench.cc: what handoff = "xclient" adds to the splice per byte
// and per command (protocol/command_stream.h): message content read in 64 KB pieces for the
// end-of-data line, and pipelined command lines classified and forwarded.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>

#include "protocol/command_stream.h"

namespace {

using mxscreen::protocol::CommandStream;

std::string message(size_t bytes) {
  std::string line(76, 'X');
  line += "\r\n";
  std::string body;
  while (body.size() < bytes) body += line;
  return body + ".\r\n";
}

void BM_CommandStreamDataContent(benchmark::State& state) {
  const std::string body = message(5 * 1024 * 1024);
  constexpr size_t kRead = 65536;  // one read slab (proxy/conn.cc)
  for (auto _ : state) {
    CommandStream stream({});
    std::string out;
    stream.next("DATA\r\n");
    stream.backend_bytes("354 End data with <CR><LF>.<CR><LF>\r\n", &out);
    for (size_t off = 0; off < body.size(); off += kRead) {
      std::string_view in(body.data() + off, std::min(kRead, body.size() - off));
      while (!in.empty()) {
        auto action = stream.next(in);
        benchmark::DoNotOptimize(action.forward.data());
        in.remove_prefix(action.consumed);
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_CommandStreamDataContent)->Unit(benchmark::kMillisecond);

void BM_CommandStreamPipelinedCommands(benchmark::State& state) {
  std::string commands;
  for (int i = 0; i < 100; ++i)
    commands += "RCPT TO:<user" + std::to_string(i) + "@example.test>\r\n";
  CommandStream::Options options;
  options.max_in_flight = 1000;
  for (auto _ : state) {
    CommandStream stream(options);
    std::string_view in = commands;
    while (!in.empty()) {
      auto action = stream.next(in);
      benchmark::DoNotOptimize(action.forward.data());
      in.remove_prefix(action.consumed);
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_CommandStreamPipelinedCommands);

}  // namespace
