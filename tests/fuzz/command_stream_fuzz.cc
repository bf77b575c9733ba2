// tests/fuzz/command_stream_fuzz.cc: the SMTP-aware splice of handoff = "xclient"
// (protocol/command_stream) between a fuzzer-chosen client byte stream and a model of
// Postfix's smtpd that reads what mxscreen forwards as Postfix does (one command per LF, a long
// line cut and its rest skipped, leading whitespace skipped, content only after its own 354, a
// BDAT chunk only on a strictly formed line). The property of issue 13.1: whatever the client
// sends and however the bytes are split, the backend never reads an XCLIENT, XFORWARD or
// STARTTLS command from the client, and the client never sees those EHLO keywords (but
// mxscreen's own STARTTLS, before its TLS started, when it offers one).
#include <fuzzer/FuzzedDataProvider.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_stream.h"
#include "tests/fuzz/fuzz_check.h"

using mxscreen::protocol::CommandStream;
using Kind = CommandStream::Action::Kind;

namespace {

bool istarts(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// Postfix's smtpd as far as it decides what is a command.
class Backend {
 public:
  Backend(size_t line_limit, bool chunking, FuzzedDataProvider& in)
      : limit_(line_limit), chunking_(chunking), in_(in) {}

  void receive(std::string_view bytes) {
    for (char c : bytes) {
      if (mode_ == Mode::kChunk) {
        if (--chunk_left_ == 0) {
          replies_ += "250 2.0.0 Ok: chunk\r\n";
          mode_ = Mode::kCommand;
        }
        continue;
      }
      if (c != '\n') {
        line_ += c;
        continue;
      }
      if (mode_ == Mode::kData) {
        end_of_data();
      } else {
        command(line_.substr(0, limit_));  // smtp_get: a long line is cut, its rest skipped
      }
      line_.clear();
    }
  }

  std::string take_replies(size_t max) {
    std::string out = replies_.substr(0, max);
    replies_.erase(0, out.size());
    return out;
  }
  bool has_replies() const { return !replies_.empty(); }

 private:
  enum class Mode { kCommand, kData, kChunk };

  void end_of_data() {
    size_t n = 1;
    if (line_.empty() || line_[0] != '.') return;
    while (n < line_.size() && line_[n] == '\r') ++n;
    if (n != line_.size()) return;
    replies_ += "250 2.0.0 Ok: queued\r\n";
    mode_ = Mode::kCommand;
  }

  void command(std::string_view line) {
    size_t start = 0;
    while (start < line.size() && static_cast<unsigned char>(line[start]) <= ' ') ++start;
    std::string_view verb = line.substr(start);
    // The property under test: none of these ever reaches the backend from the client.
    FUZZ_CHECK(!istarts(verb, "XCLIENT"));
    FUZZ_CHECK(!istarts(verb, "XFORWARD"));
    FUZZ_CHECK(!(istarts(verb, "STARTTLS") &&
                 (verb.size() == 8 || static_cast<unsigned char>(verb[8]) <= ' ')));
    if (istarts(verb, "EHLO")) {
      replies_ += "250-mx.test\r\n250-PIPELINING\r\n250-XCLIENT NAME ADDR PORT HELO\r\n";
      replies_ += "250-XFORWARD NAME ADDR\r\n250-STARTTLS\r\n";
      replies_ += chunking_ ? "250-CHUNKING\r\n250 8BITMIME\r\n" : "250 8BITMIME\r\n";
    } else if (istarts(verb, "DATA") && (verb.size() == 4 || verb[4] == '\r')) {
      if (in_.ConsumeBool()) {
        replies_ += "354 End data with <CR><LF>.<CR><LF>\r\n";
        mode_ = Mode::kData;
      } else {
        replies_ += "554 5.5.1 Error: no valid recipients\r\n";
      }
    } else if (uint64_t n = 0; chunking_ && bdat(line, &n)) {
      if (n == 0) {
        replies_ += "250 2.0.0 Ok: chunk\r\n";
      } else {
        mode_ = Mode::kChunk;
        chunk_left_ = n;
      }
    } else {
      replies_ += "250 2.0.0 Ok\r\n";
    }
  }

  // "BDAT <digits> [LAST]", spaces or tabs between, trailing CRs: Postfix's bdat_cmd.
  static bool bdat(std::string_view line, uint64_t* n) {
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t pos = 0;
    auto blank = [&] {
      size_t s = pos;
      while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
      return pos > s;
    };
    blank();
    if (!istarts(line.substr(pos), "BDAT")) return false;
    pos += 4;
    if (!blank()) return false;
    size_t digits = 0;
    *n = 0;
    while (pos < line.size() && std::isdigit(static_cast<unsigned char>(line[pos]))) {
      *n = *n * 10 + static_cast<uint64_t>(line[pos++] - '0');
      if (++digits > 18) return false;
    }
    if (digits == 0) return false;
    bool had_blank = blank();
    if (pos == line.size()) return true;
    if (!had_blank || !istarts(line.substr(pos), "LAST")) return false;
    pos += 4;
    blank();
    return pos == line.size();
  }

  size_t limit_;
  bool chunking_;
  FuzzedDataProvider& in_;
  Mode mode_ = Mode::kCommand;
  std::string line_;
  uint64_t chunk_left_ = 0;
  std::string replies_;
};

// STARTTLS may be offered only by mxscreen (offer_starttls) and only before its own TLS
// started (at byte tls_at of what the client was sent).
void check_to_client(const std::string& text, bool offer_starttls, size_t tls_at) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string_view line(text.data() + start,
                          (end == std::string::npos ? text.size() : end) - start);
    if (line.size() > 4) {
      std::string_view kw = line.substr(4);
      FUZZ_CHECK(!istarts(kw, "XCLIENT") && !istarts(kw, "XFORWARD"));
      FUZZ_CHECK(!istarts(kw, "STARTTLS") || (offer_starttls && start < tls_at));
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  CommandStream::Options options;
  options.line_limit = in.ConsumeIntegralInRange<size_t>(8, 300);
  options.max_in_flight = in.ConsumeIntegralInRange<size_t>(1, 8);
  options.chunking = in.ConsumeBool();
  options.offer_starttls = options.line_limit % 2 == 0;  // no input byte of its own
  std::vector<std::string> chunks;
  while (in.remaining_bytes() > 0 && chunks.size() < 32) {
    chunks.push_back(in.ConsumeRandomLengthString(400));
  }

  CommandStream stream(options);
  Backend backend(options.line_limit, options.chunking, in);
  std::string client;     // bytes the stream has not consumed yet
  std::string to_client;  // what the client is sent
  size_t next_chunk = 0;
  size_t tls_at = std::string::npos;  // to_client's size when mxscreen's TLS started
  for (int steps = 0; steps < 20000; ++steps) {
    CommandStream::Action a = stream.next(client);
    FUZZ_CHECK(a.consumed <= client.size());
    if (a.kind == Kind::kForward) {
      FUZZ_CHECK(!a.forward.empty() || a.consumed > 0);
      backend.receive(std::string(a.forward));
    } else if (a.kind == Kind::kAnswer) {
      FUZZ_CHECK(!a.reply.empty());
      to_client += a.reply;
    } else if (a.kind == Kind::kStartTls) {
      FUZZ_CHECK(options.offer_starttls && tls_at == std::string::npos);
      to_client += a.reply;
      tls_at = to_client.size();
    }
    client.erase(0, a.consumed);
    // The session drops plain text pipelined behind STARTTLS (RFC 3207 4.2); what the client
    // sends next arrives decrypted through the same stream.
    if (a.kind == Kind::kStartTls) client.clear();
    FUZZ_CHECK(stream.in_flight() <= options.max_in_flight);
    bool progress = a.consumed > 0 || a.kind == Kind::kForward || a.kind == Kind::kAnswer ||
                    a.kind == Kind::kStartTls;
    if (progress && a.kind != Kind::kWait) continue;
    // Stuck on input or on the backend: let the backend answer, else the client send more.
    if (backend.has_replies()) {
      std::string piece = backend.take_replies(in.ConsumeIntegralInRange<size_t>(1, 64));
      std::string out;
      if (stream.backend_bytes(piece, &out) != CommandStream::ReplyStatus::kOk) break;
      to_client += out;
    } else if (next_chunk < chunks.size()) {
      client += chunks[next_chunk++];
    } else {
      break;
    }
  }
  check_to_client(to_client, options.offer_starttls, tls_at);
  return 0;
}
