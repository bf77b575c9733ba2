// tests/protocol/reply_test.cc: SMTP reply formatting and the incremental, multi-line aware
// reader of backend replies.
#include "protocol/reply.h"

#include <gtest/gtest.h>

namespace mxscreen::protocol {
namespace {

using Status = ReplyReader::Status;

TEST(ProtocolReply, Formats) {
  EXPECT_EQ(format_reply(550, "5.7.1", "Service unavailable"), "550 5.7.1 Service unavailable\r\n");
  EXPECT_EQ(format_reply(220, "", "mx.example.com ESMTP"), "220 mx.example.com ESMTP\r\n");
  EXPECT_EQ(format_reply(250, "2.0.0", ""), "250 2.0.0\r\n");
  EXPECT_EQ(format_reply(250, "", ""), "250\r\n");
}

TEST(ProtocolReply, FormatKeepsOneLine) {
  EXPECT_EQ(format_reply(501, "5.5.2", "bad\r\n250 ok"), "501 5.5.2 bad  250 ok\r\n");
}

TEST(ProtocolReply, FormatsMultiline) {
  EXPECT_EQ(format_multiline_reply(250, "", {"a", "b"}), "250-a\r\n250 b\r\n");
  EXPECT_EQ(format_multiline_reply(250, "", {"mx.example.com", "PIPELINING", "8BITMIME"}),
            "250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  EXPECT_EQ(format_multiline_reply(550, "5.7.1", {"first", "second"}),
            "550-5.7.1 first\r\n550 5.7.1 second\r\n");
  EXPECT_EQ(format_multiline_reply(250, "", {"only"}), "250 only\r\n");
  EXPECT_EQ(format_multiline_reply(250, "", {}), "250\r\n");
}

TEST(ProtocolReplyReader, SingleLine) {
  ReplyReader reader;
  size_t consumed = 0;
  std::string input = "220 mx.example.com ESMTP Postfix\r\n";
  EXPECT_EQ(reader.feed(input, &consumed), Status::kDone);
  EXPECT_EQ(consumed, input.size());
  EXPECT_EQ(reader.code(), 220);
  ASSERT_EQ(reader.lines().size(), 1u);
  EXPECT_EQ(reader.lines()[0], "mx.example.com ESMTP Postfix");
}

TEST(ProtocolReplyReader, MultiLineAndLeftover) {
  ReplyReader reader;
  size_t consumed = 0;
  std::string reply = "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n";
  EXPECT_EQ(reader.feed(reply + "220 next", &consumed), Status::kDone);
  EXPECT_EQ(consumed, reply.size());
  EXPECT_EQ(reader.code(), 250);
  EXPECT_EQ(reader.lines(),
            (std::vector<std::string>{"mx.example.com", "PIPELINING", "SIZE 10240000"}));
}

TEST(ProtocolReplyReader, ByteAtATime) {
  std::string reply = "250-mx.example.com\r\n250-PIPELINING\n250 8BITMIME\r\n";
  ReplyReader reader;
  for (size_t i = 0; i < reply.size(); ++i) {
    size_t consumed = 0;
    Status status = reader.feed(reply.substr(i, 1), &consumed);
    EXPECT_EQ(consumed, 1u);
    EXPECT_EQ(status, i + 1 == reply.size() ? Status::kDone : Status::kNeedMore) << i;
  }
  EXPECT_EQ(reader.lines(), (std::vector<std::string>{"mx.example.com", "PIPELINING", "8BITMIME"}));
}

TEST(ProtocolReplyReader, SplitAcrossChunks) {
  ReplyReader reader;
  size_t consumed = 0;
  EXPECT_EQ(reader.feed("250-fir", &consumed), Status::kNeedMore);
  EXPECT_EQ(consumed, 7u);
  EXPECT_EQ(reader.feed("st\r\n250 la", &consumed), Status::kNeedMore);
  EXPECT_EQ(consumed, 10u);
  EXPECT_EQ(reader.feed("st\r\nQUIT", &consumed), Status::kDone);
  EXPECT_EQ(consumed, 4u);
  EXPECT_EQ(reader.lines(), (std::vector<std::string>{"first", "last"}));
}

TEST(ProtocolReplyReader, BareCodeAndEmptyText) {
  ReplyReader reader;
  size_t consumed = 0;
  EXPECT_EQ(reader.feed("250-\r\n250\r\n", &consumed), Status::kDone);
  EXPECT_EQ(reader.code(), 250);
  EXPECT_EQ(reader.lines(), (std::vector<std::string>{"", ""}));
}

TEST(ProtocolReplyReader, ResetReadsNext) {
  ReplyReader reader;
  size_t consumed = 0;
  std::string input = "220 hi\r\n250 ok\r\n";
  ASSERT_EQ(reader.feed(input, &consumed), Status::kDone);
  EXPECT_EQ(consumed, 8u);
  // Without reset the reader holds its reply and takes nothing.
  EXPECT_EQ(reader.feed(input.substr(consumed), &consumed), Status::kDone);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(reader.code(), 220);
  reader.reset();
  EXPECT_EQ(reader.feed(input.substr(8), &consumed), Status::kDone);
  EXPECT_EQ(reader.code(), 250);
  EXPECT_EQ(reader.lines(), (std::vector<std::string>{"ok"}));
}

TEST(ProtocolReplyReader, RejectsMalformed) {
  for (const char* text :
       {"\r\n", "25\r\n", "abc hi\r\n", "2500 hi\r\n", "250x\r\n", "650 hi\r\n", "260 hi\r\n",
        "250-a\r\n251 b\r\n", "EHLO x\r\n", "25a ok\r\n", "099 x\r\n"}) {
    ReplyReader reader;
    size_t consumed = 0;
    EXPECT_EQ(reader.feed(text, &consumed), Status::kInvalid) << text;
  }
}

TEST(ProtocolReplyReader, EnforcesMaxBytes) {
  ReplyReader reader(32);
  size_t consumed = 0;
  EXPECT_EQ(reader.feed("250-0123456789\r\n", &consumed), Status::kNeedMore);
  EXPECT_EQ(reader.feed("250-0123456789\r\n", &consumed), Status::kNeedMore);  // exactly 32
  EXPECT_EQ(reader.feed("2", &consumed), Status::kInvalid);
  EXPECT_EQ(reader.feed("50 x\r\n", &consumed), Status::kInvalid);
  EXPECT_EQ(consumed, 0u);

  ReplyReader endless(16);
  EXPECT_EQ(endless.feed(std::string(100, 'x'), &consumed), Status::kInvalid);
  reader.reset();
  EXPECT_EQ(reader.feed("250 0123456789012345678901234\r\n", &consumed), Status::kDone);
}

}  // namespace
}  // namespace mxscreen::protocol
