// protocol/command_stream.h: the SMTP command stream of a spliced session seen from the middle
// (handoff = "xclient"). Fed the client's bytes, it tells which to forward to the backend and
// which commands mxscreen answers itself (XCLIENT, XFORWARD, STARTTLS, over-long lines), in
// the order the client must see the replies; fed the backend's bytes, it counts the replies
// and strips XCLIENT, XFORWARD and STARTTLS from EHLO replies. Message content (DATA after the
// backend's 354, BDAT chunks) is forwarded without being read as commands. Sans-I/O: no
// sockets, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace mxscreen::protocol {

class CommandStream {
 public:
  struct Options {
    // A command line longer than this (CR included, LF not) is answered by mxscreen with 500 and
    // not forwarded: Postfix would read a prefix of it (line_length_limit), and a prefix can
    // be a different command than the one mxscreen saw.
    std::size_t line_limit = 2048;
    // Commands forwarded and not yet answered by the backend; past it, client input waits.
    std::size_t max_in_flight = 1000;
    // The backend offered CHUNKING (RFC 3030): a BDAT line starts a chunk. Without it a BDAT
    // line is an ordinary command and the bytes after it are read as commands too.
    bool chunking = false;
    // mxscreen does TLS itself ([tls]): EHLO replies offer STARTTLS and a client STARTTLS is
    // Kind::kStartTls. Otherwise STARTTLS is refused. The backend's own STARTTLS is never
    // offered: mxscreen could not read what the client says inside it.
    bool offer_starttls = false;
  };

  enum class Refused : uint8_t { kNone, kXclient, kXforward, kStarttls, kLineTooLong };

  struct Action {
    enum class Kind : uint8_t {
      kNeedMore,  // all input used (a partial line is kept); feed more
      kForward,   // write `forward` to the backend
      kAnswer,    // write `reply` to the client: every earlier command has had its reply
      kWait,      // nothing more until the backend answers; keep the unused input
      kStartTls,  // write `reply` (220) to the client, drop every byte after the STARTTLS
                  // line (RFC 3207 4.2) and read TLS from here on
    };
    Kind kind = Kind::kNeedMore;
    std::size_t consumed = 0;  // bytes of the input this action used
    std::string_view forward;  // into the input or this object; valid until the next call
    std::string_view reply;    // static text
    Refused refused = Refused::kNone;
    std::string_view line;  // kAnswer: the refused line (its first line_limit bytes)
  };

  explicit CommandStream(Options options);

  // The next action for the client's `input` (the bytes not consumed by earlier actions).
  Action next(std::string_view input);

  enum class ReplyStatus : uint8_t { kOk, kInvalid };
  // The backend's bytes: complete replies (EHLO keywords filtered) are appended to
  // `*to_client`; a partial line is kept. kInvalid: a line longer than kMaxReplyBytes.
  // After replies came in, next() may have more to do (a wait is over).
  ReplyStatus backend_bytes(std::string_view input, std::string* to_client);

  // Replies the backend owes for forwarded commands.
  std::size_t in_flight() const { return expect_.size(); }
  bool in_content() const { return mode_ != Mode::kCommand; }

  static constexpr std::size_t kMaxReplyBytes = 65536;  // one backend reply, all lines
  // RFC 5321 4.5.3.1.4: a command line is at most 512 octets. A longer BDAT line is not
  // taken as a chunk start (the backend may read a different count from a truncated line).
  static constexpr std::size_t kMaxBdatLine = 512;

 private:
  enum class Mode : uint8_t { kCommand, kData, kChunk };
  enum class Expect : uint8_t { kOther, kEhlo, kData };
  enum class Class : uint8_t { kOrdinary, kEhlo, kData, kBdat, kRefuse };
  struct Classified {
    Class what = Class::kOrdinary;
    Refused refused = Refused::kNone;
    uint64_t chunk = 0;  // kBdat
  };

  Classified classify(std::string_view line) const;
  // A complete command line (with its LF), in the input (`consumed` = its length) or in
  // line_ (consumed = 0 more bytes).
  Action take_line(std::string_view line, std::size_t consumed, bool too_long);
  Action accumulate(std::string_view input);
  Action scan_data(std::string_view input);
  void reply_done(int code, bool chunking_offered);
  // A complete multi-line reply: kept lines to `*to_client`, then reply_done().
  void emit_reply(std::string* to_client);

  Options options_;
  Mode mode_ = Mode::kCommand;
  std::deque<Expect> expect_;
  bool data_wait_ = false;  // DATA forwarded: its reply decides whether content follows

  // A command line that arrived in pieces, kept until its LF (at most line_limit bytes).
  std::string line_;
  bool line_too_long_ = false;
  bool line_ready_ = false;  // line_ is complete and waits for its turn
  std::string out_;          // a forwarded line_ stays alive here until the next call

  bool line_start_ = true;  // DATA: the last byte was LF
  bool dot_ = false;        // DATA: "." at a line start, then only CRs so far
  uint64_t chunk_left_ = 0;

  std::string reply_line_;                // a backend line without its LF yet
  std::vector<std::string> reply_lines_;  // the lines (with CRLF) of a multi-line reply
  std::size_t reply_bytes_ = 0;
};

}  // namespace mxscreen::protocol
