// tests/protocol/escape_test.cc: escaping client bytes for log lines (printable) and JSON
// strings (json_escape).
#include "protocol/escape.h"

#include <gtest/gtest.h>

namespace mxscreen::protocol {
namespace {

TEST(ProtocolEscape, PrintableKeepsAscii) {
  EXPECT_EQ(printable(""), "");
  EXPECT_EQ(printable("EHLO mail.example.com"), "EHLO mail.example.com");
  EXPECT_EQ(printable(" ~"), " ~");
}

TEST(ProtocolEscape, PrintableEscapesEverythingElse) {
  EXPECT_EQ(printable("EHLO x\r\n"), "EHLO x\\x0d\\x0a");
  EXPECT_EQ(printable("a\\b"), "a\\\\b");
  EXPECT_EQ(printable(std::string("\x00\x1f\x7f\x80\xff", 5)), "\\x00\\x1f\\x7f\\x80\\xff");
  EXPECT_EQ(printable("\x16\x03\x01"), "\\x16\\x03\\x01");  // a TLS hello on a plain port
}

TEST(ProtocolEscape, PrintableTruncates) {
  EXPECT_EQ(printable("abcdef", 6), "abcdef");
  EXPECT_EQ(printable("abcdefg", 6), "abcdef...");
  EXPECT_EQ(printable("abc", 0), "...");
  EXPECT_EQ(printable("\r\n\r\n", 2), "\\x0d\\x0a...");  // the limit counts input bytes
  std::string long_line(500, 'x');
  EXPECT_EQ(printable(long_line), std::string(100, 'x') + "...");
}

TEST(ProtocolEscape, JsonEscape) {
  EXPECT_EQ(json_escape(""), "");
  EXPECT_EQ(json_escape("plain text"), "plain text");
  EXPECT_EQ(json_escape("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
  EXPECT_EQ(json_escape("a\r\n\tb"), "a\\u000d\\u000a\\u0009b");
  EXPECT_EQ(json_escape(std::string("\x00\x1f\x7f", 3)), "\\u0000\\u001f\\u007f");
  EXPECT_EQ(json_escape("caf\xc3\xa9"), "caf\\u00c3\\u00a9");
  EXPECT_EQ(json_escape("/"), "/");
}

TEST(ProtocolEscape, JsonEscapeIsAlwaysAscii) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::string out = json_escape(all);
  for (char c : out) {
    auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << static_cast<int>(byte);
  }
  // Every unescaped quote is preceded by a backslash.
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '"') {
      EXPECT_EQ(out[i - 1], '\\');
    }
  }
}

TEST(ProtocolEscape, AsciiLowerTouchesOnlyAsciiLetters) {
  EXPECT_EQ(ascii_lower("Mail.Example.ORG"), "mail.example.org");
  EXPECT_EQ(ascii_lower(std::string("A\xc3\x89z\0Z", 6)), std::string("a\xc3\x89z\0z", 6));
  EXPECT_EQ(ascii_lower(""), "");
}

TEST(PercentDecodeTest, DecodesEscapesAndRefusesBrokenOnes) {
  EXPECT_EQ(percent_decode("p%40ss%2Fw%00rd"), std::string("p@ss/w\0rd", 9));
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%4"), std::nullopt);
  EXPECT_EQ(percent_decode("%zz"), std::nullopt);
  EXPECT_EQ(percent_decode("%+1"), std::nullopt);
}

}  // namespace
}  // namespace mxscreen::protocol
