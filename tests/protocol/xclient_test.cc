// tests/protocol/xclient_test.cc: the XCLIENT command line as Postfix's XCLIENT_README
// describes it, and RFC 3461 xtext encoding of attribute values.
#include "protocol/xclient.h"

#include <gtest/gtest.h>

namespace mxscreen::protocol {
namespace {

Endpoint ep(std::string_view text) { return *Endpoint::parse(text); }

TEST(ProtocolXclient, EncodesIpv4) {
  XclientAttrs attrs{ep("1.2.3.4:4711"), "mail.example.com", "mail.example.com", "ESMTP"};
  EXPECT_EQ(encode_xclient(attrs),
            "XCLIENT ADDR=1.2.3.4 PORT=4711 NAME=mail.example.com HELO=mail.example.com "
            "PROTO=ESMTP\r\n");
}

TEST(ProtocolXclient, EncodesIpv6WithPrefix) {
  XclientAttrs attrs{ep("[2001:db8::1]:25"), "client", "", "SMTP"};
  EXPECT_EQ(encode_xclient(attrs),
            "XCLIENT ADDR=IPV6:2001:db8::1 PORT=25 NAME=[UNAVAILABLE] HELO=client PROTO=SMTP\r\n");
}

TEST(ProtocolXclient, UnavailableAndOmitted) {
  XclientAttrs attrs;
  attrs.client = ep("1.2.3.4:4711");
  EXPECT_EQ(encode_xclient(attrs),
            "XCLIENT ADDR=1.2.3.4 PORT=4711 NAME=[UNAVAILABLE] HELO=[UNAVAILABLE]\r\n");
  attrs.client.port = 0;
  attrs.proto = "ESMTP";
  EXPECT_EQ(encode_xclient(attrs),
            "XCLIENT ADDR=1.2.3.4 NAME=[UNAVAILABLE] HELO=[UNAVAILABLE] PROTO=ESMTP\r\n");
}

TEST(ProtocolXclient, ValuesAreXtextEncoded) {
  XclientAttrs attrs{ep("1.2.3.4:4711"), "bad helo=x+y\r\n", "n\xe9", "ESMTP"};
  EXPECT_EQ(encode_xclient(attrs),
            "XCLIENT ADDR=1.2.3.4 PORT=4711 NAME=n+E9 HELO=bad+20helo+3Dx+2By+0D+0A "
            "PROTO=ESMTP\r\n");
}

TEST(ProtocolXclient, Xtext) {
  EXPECT_EQ(xtext_encode(""), "");
  EXPECT_EQ(xtext_encode("[192.0.2.1]"), "[192.0.2.1]");
  EXPECT_EQ(xtext_encode("a+b=c"), "a+2Bb+3Dc");
  EXPECT_EQ(xtext_encode(std::string("\x00\x1f \x7f\xff", 5)), "+00+1F+20+7F+FF");
  EXPECT_EQ(xtext_encode("!~"), "!~");  // 33 and 126 are the edges kept as they are
}

}  // namespace
}  // namespace mxscreen::protocol
