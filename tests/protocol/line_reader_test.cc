// tests/protocol/line_reader_test.cc: SMTP line framing: line endings, bare LF, split input,
// the length limit on a 1 MB line, NUL bytes, the queue cap and clear().
#include "protocol/line_reader.h"

#include <gtest/gtest.h>

#include <string>

namespace mxscreen::protocol {
namespace {

TEST(ProtocolLineReader, SplitsCrlfLines) {
  LineReader reader(2048);
  EXPECT_EQ(reader.feed("EHLO x\r\nMAIL FROM:<a@b>\r\n"), 25u);
  auto first = reader.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->text, "EHLO x");
  EXPECT_FALSE(first->bare_lf);
  EXPECT_FALSE(first->too_long);
  EXPECT_FALSE(first->has_nul);
  auto second = reader.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->text, "MAIL FROM:<a@b>");
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(ProtocolLineReader, FlagsBareLf) {
  LineReader reader(2048);
  reader.feed("EHLO x\nNOOP\r\n\n\r\n");
  auto line = reader.next();
  EXPECT_EQ(line->text, "EHLO x");
  EXPECT_TRUE(line->bare_lf);
  line = reader.next();
  EXPECT_EQ(line->text, "NOOP");
  EXPECT_FALSE(line->bare_lf);
  line = reader.next();
  EXPECT_EQ(line->text, "");
  EXPECT_TRUE(line->bare_lf);
  line = reader.next();
  EXPECT_EQ(line->text, "");
  EXPECT_FALSE(line->bare_lf);
}

TEST(ProtocolLineReader, KeepsLoneCrInText) {
  LineReader reader(2048);
  reader.feed("A\rB\r\n");
  auto line = reader.next();
  EXPECT_EQ(line->text, "A\rB");
  EXPECT_FALSE(line->bare_lf);
}

TEST(ProtocolLineReader, AssemblesByteByByte) {
  LineReader reader(2048);
  std::string input = "EHLO client.example\r\nRCPT TO:<a@b>\nQUIT\r\n";
  for (char c : input) {
    EXPECT_EQ(reader.feed(std::string_view(&c, 1)), 1u);
  }
  auto line = reader.next();
  EXPECT_EQ(line->text, "EHLO client.example");
  EXPECT_FALSE(line->bare_lf);
  line = reader.next();
  EXPECT_EQ(line->text, "RCPT TO:<a@b>");
  EXPECT_TRUE(line->bare_lf);
  line = reader.next();
  EXPECT_EQ(line->text, "QUIT");
  EXPECT_FALSE(line->bare_lf);
}

TEST(ProtocolLineReader, PartialLineIsNotPending) {
  LineReader reader(2048);
  reader.feed("EHLO x\r");
  EXPECT_FALSE(reader.has_pending_line());
  EXPECT_EQ(reader.buffered(), 7u);
  reader.feed("\nNOOP\r\nQU");
  EXPECT_TRUE(reader.has_pending_line());
  reader.next();
  EXPECT_TRUE(reader.has_pending_line());  // NOOP queued behind EHLO: pipelining
  reader.next();
  EXPECT_FALSE(reader.has_pending_line());
  EXPECT_EQ(reader.buffered(), 2u);
}

TEST(ProtocolLineReader, LineAtExactLimitIsNotTooLong) {
  LineReader reader(8);
  reader.feed("12345678\r");
  reader.feed("\n12345678\n");
  auto line = reader.next();
  EXPECT_EQ(line->text, "12345678");
  EXPECT_FALSE(line->too_long);
  line = reader.next();
  EXPECT_EQ(line->text, "12345678");
  EXPECT_FALSE(line->too_long);
  EXPECT_TRUE(line->bare_lf);
}

TEST(ProtocolLineReader, OneByteOverLimitIsTooLong) {
  LineReader reader(8);
  reader.feed("123456789\r\n12345678\r");
  reader.feed("x\r\n");
  auto line = reader.next();
  EXPECT_EQ(line->text, "12345678");
  EXPECT_TRUE(line->too_long);
  EXPECT_FALSE(line->bare_lf);
  line = reader.next();  // the CR was not the end of the line after all
  EXPECT_EQ(line->text, "12345678");
  EXPECT_TRUE(line->too_long);
}

TEST(ProtocolLineReader, MegabyteLineStaysBounded) {
  LineReader reader(2048);
  std::string chunk(64 * 1024, 'A');
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(reader.feed(chunk), chunk.size());
    EXPECT_LE(reader.buffered(), 2049u);
  }
  reader.feed("\nNOOP\r\n");
  auto line = reader.next();
  ASSERT_TRUE(line);
  EXPECT_TRUE(line->too_long);
  EXPECT_TRUE(line->bare_lf);
  EXPECT_EQ(line->text, std::string(2048, 'A'));
  line = reader.next();
  EXPECT_EQ(line->text, "NOOP");
  EXPECT_FALSE(line->too_long);
}

TEST(ProtocolLineReader, FlagsNul) {
  LineReader reader(4);
  reader.feed(std::string_view("NO\0OP\r\nNOOP\r\n", 13));
  auto line = reader.next();
  EXPECT_TRUE(line->has_nul);
  EXPECT_TRUE(line->too_long);
  line = reader.next();
  EXPECT_FALSE(line->has_nul);

  LineReader short_lines(2048);
  short_lines.feed(std::string_view("A\0B\r\n", 5));
  line = short_lines.next();
  EXPECT_EQ(line->text, std::string_view("A\0B", 3));
  EXPECT_TRUE(line->has_nul);
}

TEST(ProtocolLineReader, NulInDiscardedTailIsFlagged) {
  LineReader reader(2);
  reader.feed("abcd");
  reader.feed(std::string_view("e\0f\r\n", 5));
  auto line = reader.next();
  EXPECT_EQ(line->text, "ab");
  EXPECT_TRUE(line->has_nul);
}

TEST(ProtocolLineReader, QueueCapAppliesBackPressure) {
  LineReader reader(2048, 3);
  std::string burst;
  for (int i = 0; i < 5; ++i) burst += "NOOP\r\n";
  EXPECT_EQ(reader.feed(burst), 18u);  // three lines taken, the caller keeps the rest
  EXPECT_TRUE(reader.full());
  EXPECT_EQ(reader.feed("NOOP\r\n"), 0u);
  reader.next();
  EXPECT_FALSE(reader.full());
  std::string_view rest = std::string_view(burst).substr(18);
  EXPECT_EQ(reader.feed(rest), 6u);
  int lines = 0;
  while (reader.next()) ++lines;
  EXPECT_EQ(lines, 3);
  EXPECT_EQ(reader.feed(rest.substr(6)), 6u);
  EXPECT_EQ(reader.next()->text, "NOOP");
}

TEST(ProtocolLineReader, QueueCapStillTakesTrailingPartialLine) {
  LineReader reader(2048, 1);
  EXPECT_EQ(reader.feed("NOOP"), 4u);
  EXPECT_EQ(reader.feed("\r\nQUIT\r\n"), 2u);
  EXPECT_EQ(reader.next()->text, "NOOP");
}

TEST(ProtocolLineReader, TenThousandPipelinedCommands) {
  LineReader reader;
  std::string burst;
  for (int i = 0; i < 10000; ++i) burst += "RCPT TO:<user@example.org>\r\n";
  std::string_view rest = burst;
  int lines = 0;
  while (!rest.empty()) {
    rest.remove_prefix(reader.feed(rest));
    EXPECT_LE(reader.buffered(), 2048u * LineReader::kDefaultMaxQueued);
    while (auto line = reader.next()) {
      EXPECT_EQ(line->text, "RCPT TO:<user@example.org>");
      ++lines;
    }
  }
  EXPECT_EQ(lines, 10000);
}

TEST(ProtocolLineReader, ClearDropsEverything) {
  LineReader reader(8);
  reader.feed("STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT");
  EXPECT_EQ(reader.next()->text, "STARTTLS");
  reader.clear();
  EXPECT_FALSE(reader.has_pending_line());
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.next());
  reader.feed("\r\nEHLO x\r\n");  // the dropped partial line does not come back
  auto line = reader.next();
  EXPECT_EQ(line->text, "");
  EXPECT_FALSE(line->too_long);
  EXPECT_EQ(reader.next()->text, "EHLO x");
}

TEST(ProtocolLineReader, TakeUnprocessedGivesBytesBack) {
  LineReader reader(2048);
  reader.feed("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\nDATA\r");
  EXPECT_EQ(reader.next()->text, "EHLO x");
  EXPECT_EQ(reader.take_unprocessed(), "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\nDATA\r");
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.has_pending_line());
  EXPECT_EQ(reader.take_unprocessed(), "");
}

}  // namespace
}  // namespace mxscreen::protocol
