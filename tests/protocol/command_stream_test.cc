// tests/protocol/command_stream_test.cc: the command stream of an XCLIENT-mode splice: client
// XCLIENT/XFORWARD/STARTTLS answered by mxscreen in reply order and never forwarded, message
// content passed through unread, EHLO replies stripped of the backend's private keywords.
#include "protocol/command_stream.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace mxscreen::protocol {
namespace {

using Refused = CommandStream::Refused;
using Kind = CommandStream::Action::Kind;

constexpr std::string_view kDenied = "550 5.7.0 Error: insufficient authorization\r\n";

// Plays the proxy's part: client bytes the stream did not take yet are held, replies from
// the backend release them.
struct Splice {
  explicit Splice(CommandStream::Options options = {}) : stream(options) {}

  // Fed in pieces of 1..max_piece bytes, sizes drawn from rng.
  void client_in_pieces(std::string_view bytes, std::mt19937* rng, size_t max_piece) {
    std::uniform_int_distribution<size_t> size(1, max_piece);
    while (!bytes.empty()) {
      size_t n = std::min(size(*rng), bytes.size());
      held += bytes.substr(0, n);
      bytes.remove_prefix(n);
      run();
    }
  }
  void client(std::string_view bytes, bool byte_by_byte = false) {
    if (!byte_by_byte) {
      held += bytes;
      run();
      return;
    }
    for (char c : bytes) {
      held += c;
      run();
    }
  }
  void backend(std::string_view bytes) {
    ASSERT_EQ(stream.backend_bytes(bytes, &to_client), CommandStream::ReplyStatus::kOk);
    run();
  }
  void run() {
    std::string_view in = held;
    while (true) {
      auto a = stream.next(in);
      in.remove_prefix(a.consumed);
      if (a.kind == Kind::kForward) {
        to_backend += a.forward;
      } else if (a.kind == Kind::kAnswer || a.kind == Kind::kStartTls) {
        to_client += a.reply;
        if (a.kind == Kind::kStartTls) starttls_at = to_client.size();
        refused.push_back(a.refused);
        lines.emplace_back(a.line);
      } else {
        break;
      }
    }
    held = std::string(in);
  }

  CommandStream stream;
  std::string held;
  std::string to_backend;
  std::string to_client;
  std::vector<Refused> refused;
  std::vector<std::string> lines;
  size_t starttls_at = 0;  // to_client's size when TLS would start
};

TEST(ProtocolCommandStream, RefusesXclientAndXforwardWithoutForwarding) {
  for (std::string line :
       std::vector<std::string>{"XCLIENT ADDR=127.0.0.1\r\n", "xclient addr=127.0.0.1\r\n",
                                " \tXCLIENT ADDR=127.0.0.1\r\n", "\x0bXClient ADDR=127.0.0.1\n",
                                "\rXCLIENT\r\n", "XCLIENTADDR=1\r\n", "XFORWARD ADDR=127.0.0.1\r\n",
                                std::string("\x00XFORWARD NAME=a\r\n", 18)}) {
    for (bool byte_by_byte : {false, true}) {
      Splice s;
      s.client(line, byte_by_byte);
      EXPECT_EQ(s.to_backend, "") << line;
      EXPECT_EQ(s.to_client, kDenied) << line;
      ASSERT_EQ(s.lines.size(), 1U);
      EXPECT_EQ(s.lines[0], line);
      EXPECT_EQ(s.held, "");
    }
  }
}

TEST(ProtocolCommandStream, PassesOrdinaryCommandsAsOneWrite) {
  Splice s;
  std::string batch = "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nNOOP XCLIENT\r\n";
  auto a = s.stream.next(batch);
  EXPECT_EQ(a.kind, Kind::kForward);
  EXPECT_EQ(a.consumed, batch.size());
  EXPECT_EQ(a.forward, batch);
  EXPECT_EQ(s.stream.in_flight(), 3U);
}

TEST(ProtocolCommandStream, AnswerWaitsForEarlierPipelinedReplies) {
  Splice s;
  s.client("RSET\r\nNOOP\r\nXCLIENT ADDR=127.0.0.1\r\nMAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(s.to_backend, "RSET\r\nNOOP\r\n");
  EXPECT_EQ(s.to_client, "");
  s.backend("250 2.0.0 Ok\r\n");
  EXPECT_EQ(s.to_client, "250 2.0.0 Ok\r\n");
  EXPECT_EQ(s.to_backend, "RSET\r\nNOOP\r\n");
  s.backend("250 2.0.0 O");
  s.backend("k\r\n");
  EXPECT_EQ(s.to_client, std::string("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n") + std::string(kDenied));
  EXPECT_EQ(s.to_backend, "RSET\r\nNOOP\r\nMAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(s.held, "");
}

TEST(ProtocolCommandStream, MessageContentPassesUnread) {
  std::string body =
      "Subject: x\r\nXCLIENT ADDR=127.0.0.1\r\n\r\nSTARTTLS\r\n..\r\n. \r\nDATA\r\n.\r\n";
  for (bool byte_by_byte : {false, true}) {
    Splice s;
    s.client("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + body +
                 "XCLIENT ADDR=127.0.0.1\r\nQUIT\r\n",
             byte_by_byte);
    EXPECT_EQ(s.to_backend, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    EXPECT_EQ(s.to_backend, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + body);
    EXPECT_EQ(s.to_client,
              "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    s.backend("250 2.0.0 Ok: queued as 1234\r\n");
    EXPECT_EQ(s.to_client,
              "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
              "250 2.0.0 Ok: queued as 1234\r\n" +
                  std::string(kDenied));
    EXPECT_EQ(s.to_backend,
              "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + body + "QUIT\r\n");
  }
}

TEST(ProtocolCommandStream, DataEndsWhereThePostfixEndsIt) {
  // Postfix ends DATA at "." with any CRs and a LF: bare LF (SMTP smuggling) and ".\r\r\n"
  // included. What follows is a command and is checked.
  for (std::string end : {"x\n.\n", "x\r\n.\r\r\n", ".\r\n", "x\r\n.\n"}) {
    Splice s;
    s.client("DATA\r\n");
    s.backend("354 go ahead\r\n");
    s.client(end + "XCLIENT ADDR=127.0.0.1\r\n");
    EXPECT_EQ(s.to_backend, "DATA\r\n" + end) << end;
    s.backend("250 2.0.0 Ok\r\n");
    EXPECT_EQ(s.to_client, "354 go ahead\r\n250 2.0.0 Ok\r\n" + std::string(kDenied)) << end;
  }
  // Not an end: a dot-stuffed line, a dot with text, a dot inside a line, a bare CR.
  Splice s;
  s.client("DATA\r\n");
  s.backend("354 go ahead\r\n");
  std::string body = "..\r\n. \r\n.x\r\na.\r\n\r.\r\n.\rX\r\nXCLIENT ADDR=1.2.3.4\r\n";
  s.client(body);
  EXPECT_EQ(s.to_backend, "DATA\r\n" + body);
  EXPECT_TRUE(s.stream.in_content());
}

TEST(ProtocolCommandStream, DataContentWaitsForThe354) {
  // Content sent without waiting for 354 is held: if DATA is refused it is read as commands.
  Splice s;
  s.client("DATA\r\nXCLIENT ADDR=127.0.0.1\r\n.\r\n");
  EXPECT_EQ(s.to_backend, "DATA\r\n");
  s.backend("554 5.5.1 Error: no valid recipients\r\n");
  EXPECT_EQ(s.to_client, "554 5.5.1 Error: no valid recipients\r\n" + std::string(kDenied));
  EXPECT_EQ(s.to_backend, "DATA\r\n.\r\n");
  EXPECT_FALSE(s.stream.in_content());
}

TEST(ProtocolCommandStream, BdatChunksOnlyWhenOffered) {
  std::string chunk = "XCLIENT ADDR=127.0.0.1\r\n";  // 24 bytes of message content
  CommandStream::Options offered;
  offered.chunking = true;
  Splice s(offered);
  s.client("BDAT 24 LAST\r\n" + chunk + "XCLIENT ADDR=127.0.0.1\r\n");
  EXPECT_EQ(s.to_backend, "BDAT 24 LAST\r\n" + chunk);
  s.backend("250 2.0.0 Ok: queued\r\n");
  EXPECT_EQ(s.to_client, "250 2.0.0 Ok: queued\r\n" + std::string(kDenied));

  // Without CHUNKING offered, or with a line the backend might read differently, the bytes
  // after BDAT are commands.
  for (std::string line : {"BDAT 24 LAST\r\n", "BDAT 24 LAST extra\r\n", "BDAT 0x18\r\n",
                           "BDAT\x0b"
                           "24\r\n",
                           "BDAT 1234567890123456789\r\n"}) {
    Splice t(line == "BDAT 24 LAST\r\n" ? CommandStream::Options{} : offered);
    t.client(line + chunk);
    EXPECT_EQ(t.to_backend, line) << line;
    t.backend("503 5.5.1 Error: need RCPT command\r\n");
    EXPECT_EQ(t.to_client, "503 5.5.1 Error: need RCPT command\r\n" + std::string(kDenied));
  }
}

TEST(ProtocolCommandStream, EhloReplyDecidesChunking) {
  CommandStream::Options offered;
  offered.chunking = true;
  Splice s(offered);
  s.client("EHLO a.example\r\n");
  s.backend("250-vm\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  s.client("BDAT 24 LAST\r\nXCLIENT ADDR=127.0.0.1\r\n");
  EXPECT_EQ(s.to_backend, "EHLO a.example\r\nBDAT 24 LAST\r\n");
}

TEST(ProtocolCommandStream, StripsPrivateKeywordsFromEhloReplies) {
  Splice s;
  s.client("EHLO a.example\r\n");
  s.backend(
      "250-vm\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-XCLIENT NAME ADDR PROTO HELO\r\n"
      "250-xforward NAME ADDR\r\n250-XCLIENTX\r\n250 CHUNKING\r\n");
  EXPECT_EQ(s.to_client, "250-vm\r\n250-PIPELINING\r\n250-XCLIENTX\r\n250 CHUNKING\r\n");
  s.client("EHLO a.example\r\n");
  s.backend("250-vm\r\n250-PIPELINING\r\n250-XFORWARD NAME\r\n250 XCLIENT NAME ADDR\r\n");
  EXPECT_EQ(s.to_client.substr(s.to_client.size() - 24), "250-vm\r\n250 PIPELINING\r\n");
  s.client("EHLO a.example\r\n");
  s.backend("250-vm\n250 XCLIENT NAME\n");
  EXPECT_EQ(s.to_client.substr(s.to_client.size() - 7), "250 vm\n");
  // Other multi-line replies pass as they are.
  s.client("RCPT TO:<x@y.example>\r\n");
  s.backend("550-5.1.1 no such user\r\n550 5.1.1 XCLIENT is not a user\r\n");
  EXPECT_EQ(s.to_client.substr(s.to_client.size() - 57),
            "550-5.1.1 no such user\r\n550 5.1.1 XCLIENT is not a user\r\n");
  EXPECT_EQ(s.stream.in_flight(), 0U);
}

TEST(ProtocolCommandStream, StarttlsIsAnsweredByMxscreen) {
  Splice s;
  s.client("STARTTLS\r\n");
  EXPECT_EQ(s.to_backend, "");
  EXPECT_EQ(s.to_client, "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_EQ(s.refused, std::vector<Refused>{Refused::kStarttls});
}

TEST(ProtocolCommandStream, OffersAndStartsItsOwnTls) {
  CommandStream::Options options;
  options.offer_starttls = true;
  Splice s(options);
  auto exchange = [&](std::string_view client, std::string_view backend) {
    size_t mark = s.to_client.size();
    s.client(client);
    s.backend(backend);
    return s.to_client.substr(mark);
  };
  EXPECT_EQ(exchange("EHLO a.example\r\n", "250-vm\r\n250-STARTTLS\r\n250 XCLIENT NAME\r\n"),
            "250-vm\r\n250 STARTTLS\r\n");
  EXPECT_EQ(exchange("EHLO a.example\r\n", "250 vm\r\n"), "250-vm\r\n250 STARTTLS\r\n");
  EXPECT_EQ(exchange("EHLO a.example\r\n", "250\n"), "250-\n250 STARTTLS\n");
  size_t mark = s.to_client.size();
  s.client("HELO a.example\r\nSTARTTLS\r\n");
  EXPECT_EQ(s.to_backend,
            "EHLO a.example\r\nEHLO a.example\r\nEHLO a.example\r\nHELO a.example\r\n");
  EXPECT_EQ(s.starttls_at, 0U);  // waits for the HELO's reply
  s.backend("250 vm\r\n");
  EXPECT_EQ(s.to_client.substr(mark), "250 vm\r\n220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(s.starttls_at, s.to_client.size());
  // Inside TLS: no second STARTTLS, in EHLO replies or as a command.
  EXPECT_EQ(exchange("EHLO a.example\r\nSTARTTLS\r\n", "250-vm\r\n250 PIPELINING\r\n"),
            "250-vm\r\n250 PIPELINING\r\n502 5.5.1 Error: command not implemented\r\n");
  // A failed EHLO is not touched.
  EXPECT_EQ(exchange("EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n"),
            "501 5.5.4 Syntax: EHLO hostname\r\n");
}

TEST(ProtocolCommandStream, LongLinesAreRefusedWhole) {
  CommandStream::Options options;
  options.line_limit = 64;
  for (bool byte_by_byte : {false, true}) {
    Splice s(options);
    std::string spaces(100, ' ');
    s.client("NOOP\r\n" + spaces + "XCLIENT ADDR=127.0.0.1\r\nNOOP " + std::string(58, 'x') +
                 "\r\nRSET\r\n",
             byte_by_byte);
    EXPECT_EQ(s.to_backend, "NOOP\r\n");
    s.backend("250 2.0.0 Ok\r\n");
    EXPECT_EQ(s.to_client, "250 2.0.0 Ok\r\n500 5.5.2 Error: line too long\r\n");
    EXPECT_EQ(s.to_backend, "NOOP\r\nNOOP " + std::string(58, 'x') + "\r\nRSET\r\n");
    EXPECT_EQ(s.lines.back().size(), 64U);
  }
}

TEST(ProtocolCommandStream, BoundsCommandsInFlight) {
  CommandStream::Options options;
  options.max_in_flight = 2;
  Splice s(options);
  s.client("NOOP\r\nNOOP\r\nRSET\r\n");
  EXPECT_EQ(s.to_backend, "NOOP\r\nNOOP\r\n");
  EXPECT_EQ(s.held, "RSET\r\n");
  s.backend("250 2.0.0 Ok\r\n");
  EXPECT_EQ(s.to_backend, "NOOP\r\nNOOP\r\nRSET\r\n");
}

TEST(ProtocolCommandStream, PiecesDoNotChangeTheOutcome) {
  // One session in phases (client bytes, then the backend's replies), fed whole and in
  // random pieces: the same bytes reach the backend and the client either way.
  CommandStream::Options options;
  options.chunking = true;
  options.line_limit = 100;
  const std::vector<std::pair<std::string, std::string>> phases = {
      {"EHLO a.example\r\nXCLIENT ADDR=1.2.3.4\r\n",
       "250-vm\r\n250-XCLIENT NAME\r\n250 CHUNKING\r\n"},
      {"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n"
       "XCLIENT ADDR=1\r\n..\r\n.\r\r\nXFORWARD A=1\r\n" +
           std::string(150, 'L') +
           "\r\nSTARTTLS\r\nBDAT 22 LAST\r\nXCLIENT ADDR=1.2.3.4\r\nNOOP\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"},
      {"", "250 2.0.0 Ok: queued\r\n"},
      {"", "250 2.0.0 Ok: queued\r\n250 2.0.0 Ok\r\n"},
  };
  auto play = [&](std::mt19937* rng, size_t max_piece) {
    Splice s(options);
    for (const auto& [client, backend] : phases) {
      if (rng) {
        s.client_in_pieces(client, rng, max_piece);
      } else {
        s.client(client);
      }
      s.backend(backend);
    }
    return s;
  };
  Splice whole = play(nullptr, 0);
  EXPECT_EQ(whole.held, "");
  EXPECT_EQ(whole.stream.in_flight(), 0U);
  EXPECT_EQ(whole.refused, (std::vector<Refused>{Refused::kXclient, Refused::kXforward,
                                                 Refused::kLineTooLong, Refused::kStarttls}));
  for (unsigned seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    Splice pieces = play(&rng, 1 + seed % 40);
    ASSERT_EQ(pieces.to_backend, whole.to_backend) << seed;
    ASSERT_EQ(pieces.to_client, whole.to_client) << seed;
    ASSERT_EQ(pieces.refused, whole.refused) << seed;
  }
}

TEST(ProtocolCommandStream, RefusesOverlongBackendLines) {
  CommandStream stream({});
  std::string out;
  EXPECT_EQ(stream.backend_bytes(std::string(CommandStream::kMaxReplyBytes + 1, '2'), &out),
            CommandStream::ReplyStatus::kInvalid);
}

}  // namespace
}  // namespace mxscreen::protocol
