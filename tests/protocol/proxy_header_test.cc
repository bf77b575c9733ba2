// tests/protocol/proxy_header_test.cc: PROXY protocol v1/v2 encoding against the examples of
// HAProxy's proxy-protocol.txt, round trips, and the incremental parser's need-more/invalid
// decisions on every prefix.
#include "protocol/proxy_header.h"

#include <gtest/gtest.h>

namespace mxscreen::protocol {
namespace {

using Status = ProxyParse::Status;

const std::string kSignature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

Endpoint ep(std::string_view text) { return *Endpoint::parse(text); }

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// Every strict prefix of a valid header must ask for more, never give up or finish early.
void expect_prefixes_need_more(const std::string& header) {
  for (size_t n = 0; n < header.size(); ++n) {
    ProxyParse parse = parse_proxy_header(std::string_view(header).substr(0, n));
    EXPECT_EQ(parse.status, Status::kNeedMore) << "prefix length " << n << ": " << parse.error;
  }
}

TEST(ProtocolProxyHeader, EncodesV1Tcp4) {
  EXPECT_EQ(encode_proxy_v1(ep("255.255.255.255:65535"), ep("255.255.255.255:65535")),
            "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  EXPECT_EQ(encode_proxy_v1(ep("192.168.0.1:56324"), ep("192.168.0.11:443")),
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST(ProtocolProxyHeader, EncodesV1Tcp6) {
  EXPECT_EQ(encode_proxy_v1(ep("[2001:db8::1]:4711"), ep("[2001:db8::25]:25")),
            "PROXY TCP6 2001:db8::1 2001:db8::25 4711 25\r\n");
  std::string longest = encode_proxy_v1(ep("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
                                        ep("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
  EXPECT_EQ(longest,
            "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
  EXPECT_EQ(longest.size(), 104u);  // the spec's worst case for TCP6
}

TEST(ProtocolProxyHeader, EncodesV1MixedFamiliesAsTcp6) {
  EXPECT_EQ(encode_proxy_v1(ep("192.0.2.1:4711"), ep("[2001:db8::25]:25")),
            "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::25 4711 25\r\n");
}

TEST(ProtocolProxyHeader, ParsesV1) {
  std::string header = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  ProxyParse parse = parse_proxy_header(header + "EHLO x\r\n");
  ASSERT_EQ(parse.status, Status::kDone) << parse.error;
  EXPECT_EQ(parse.consumed, header.size());
  EXPECT_FALSE(parse.header.local);
  EXPECT_EQ(parse.header.source, ep("255.255.255.255:65535"));
  EXPECT_EQ(parse.header.destination, ep("255.255.255.255:65535"));

  parse = parse_proxy_header("PROXY TCP6 2001:db8::1 ::1 4711 0\r\n");
  ASSERT_EQ(parse.status, Status::kDone) << parse.error;
  EXPECT_EQ(parse.header.source, ep("[2001:db8::1]:4711"));
  EXPECT_EQ(parse.header.destination.address.to_string(), "::1");
  EXPECT_EQ(parse.header.destination.port, 0);

  parse = parse_proxy_header("PROXY TCP6 ::ffff:192.0.2.1 ::1 4711 25\r\n");
  ASSERT_EQ(parse.status, Status::kDone) << parse.error;
  EXPECT_TRUE(parse.header.source.address.is_v4());
}

TEST(ProtocolProxyHeader, ParsesV1Unknown) {
  ProxyParse parse = parse_proxy_header("PROXY UNKNOWN\r\n");
  ASSERT_EQ(parse.status, Status::kDone);
  EXPECT_TRUE(parse.header.local);
  EXPECT_EQ(parse.consumed, 15u);

  // Section 2.1: anything after UNKNOWN up to CRLF is ignored.
  std::string with_junk = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
  parse = parse_proxy_header(with_junk + "QUIT\r\n");
  ASSERT_EQ(parse.status, Status::kDone);
  EXPECT_TRUE(parse.header.local);
  EXPECT_EQ(parse.consumed, with_junk.size());
}

TEST(ProtocolProxyHeader, V1PrefixesNeedMore) {
  expect_prefixes_need_more("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  expect_prefixes_need_more("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 4711 25\r\n");
  expect_prefixes_need_more("PROXY UNKNOWN\r\n");
  expect_prefixes_need_more("PROXY UNKNOWN whatever 1 2\r\n");
}

TEST(ProtocolProxyHeader, V1RejectsGarbageEarly) {
  for (const char* text : {"EHLO x\r\n",
                           "E",
                           "HELO",
                           "GET / HTTP/1.0\r\n",
                           "\x16\x03\x01",
                           "PROXY\r\n",
                           "PROXZ",
                           "proxy TCP4",
                           "PROXY TCP5",
                           "PROXY TCP4  ",
                           "PROXY TCP4 1.2.3.4x",
                           "PROXY TCP4 ::1",
                           "PROXY TCP6 1.2.3.4 ",
                           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3",
                           "PROXY TCP4 1.2.3.4 5.6.7.8 a",
                           "PROXY TCP4 1.2.3.4 5.6.7.8 123456",
                           "PROXY TCP4 1.2.3.456 ",
                           "PROXY TCP4 1.2\r",
                           "PROXY TCP4 1.2.3.4\rx",
                           "PROXY TCP6 g",
                           "PROXY UNKNOWNX",
                           "PROXY \r\n"}) {
    ProxyParse parse = parse_proxy_header(text);
    EXPECT_EQ(parse.status, Status::kInvalid) << text;
    EXPECT_FALSE(parse.error.empty()) << text;
  }
}

TEST(ProtocolProxyHeader, V1RejectsBadLines) {
  for (const char* text :
       {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "PROXY UNKNOWN\n", "PROXY TCP4\r\n"}) {
    EXPECT_EQ(parse_proxy_header(text).status, Status::kInvalid) << text;
  }
}

TEST(ProtocolProxyHeader, V1TooLong) {
  std::string line = "PROXY UNKNOWN " + std::string(kProxyV1MaxLength - 16, 'x') + "\r\n";
  ASSERT_EQ(line.size(), kProxyV1MaxLength);
  EXPECT_EQ(parse_proxy_header(line).status, Status::kDone);
  std::string longer = "PROXY UNKNOWN " + std::string(kProxyV1MaxLength - 15, 'x') + "\r\n";
  ProxyParse parse = parse_proxy_header(longer);
  EXPECT_EQ(parse.status, Status::kInvalid);
  EXPECT_NE(parse.error.find("too long"), std::string::npos);
  // Without a line end at all, 107 bytes are enough to give up.
  EXPECT_EQ(parse_proxy_header(longer.substr(0, kProxyV1MaxLength)).status, Status::kInvalid);
  EXPECT_EQ(parse_proxy_header(longer.substr(0, kProxyV1MaxLength - 1)).status, Status::kNeedMore);
}

TEST(ProtocolProxyHeader, EncodesV2Ipv4) {
  std::string expected = kSignature + bytes({0x21, 0x11, 0x00, 0x0c,  // PROXY, TCP4, 12 bytes
                                             192, 0, 2, 1,            // source address
                                             198, 51, 100, 25,        // destination address
                                             0x12, 0x67,              // 4711
                                             0x00, 0x19});            // 25
  EXPECT_EQ(encode_proxy_v2(ep("192.0.2.1:4711"), ep("198.51.100.25:25")), expected);
  EXPECT_EQ(expected.size(), 16u + 12u);
}

TEST(ProtocolProxyHeader, EncodesV2Ipv6) {
  std::string header = encode_proxy_v2(ep("[2001:db8::1]:4711"), ep("[::1]:25"));
  ASSERT_EQ(header.size(), 16u + 36u);
  EXPECT_EQ(header.substr(0, 12), kSignature);
  EXPECT_EQ(header.substr(12, 4), bytes({0x21, 0x21, 0x00, 0x24}));
  EXPECT_EQ(header.substr(16, 16),
            bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(header.substr(32, 16), bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(header.substr(48, 4), bytes({0x12, 0x67, 0x00, 0x19}));

  // Mixed families: IPv6 with the IPv4 side mapped.
  std::string mixed = encode_proxy_v2(ep("192.0.2.1:4711"), ep("[::1]:25"));
  ASSERT_EQ(mixed.size(), 52u);
  EXPECT_EQ(mixed.substr(16, 16), bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}));
}

TEST(ProtocolProxyHeader, RoundTrips) {
  const std::pair<const char*, const char*> cases[] = {
      {"192.0.2.1:4711", "198.51.100.25:25"},
      {"[2001:db8::1]:65535", "[2001:db8::25]:25"},
      {"0.0.0.0:1", "255.255.255.255:65535"},
      {"192.0.2.1:4711", "[2001:db8::25]:25"},
  };
  for (const auto& [src_text, dst_text] : cases) {
    Endpoint src = ep(src_text);
    Endpoint dst = ep(dst_text);
    for (const std::string& header : {encode_proxy_v1(src, dst), encode_proxy_v2(src, dst)}) {
      ProxyParse parse = parse_proxy_header(header + "220 banner");
      ASSERT_EQ(parse.status, Status::kDone) << src_text << " " << parse.error;
      EXPECT_EQ(parse.consumed, header.size());
      EXPECT_FALSE(parse.header.local);
      // Mapped addresses come back as plain IPv4.
      EXPECT_EQ(parse.header.source, src);
      EXPECT_EQ(parse.header.destination, dst);
      expect_prefixes_need_more(header);
    }
  }
}

TEST(ProtocolProxyHeader, V2LocalAndUnspec) {
  std::string local = kSignature + bytes({0x20, 0x00, 0x00, 0x00});
  ProxyParse parse = parse_proxy_header(local + "EHLO");
  ASSERT_EQ(parse.status, Status::kDone) << parse.error;
  EXPECT_TRUE(parse.header.local);
  EXPECT_EQ(parse.consumed, 16u);

  // LOCAL with an address block: the addresses are ignored but skipped.
  std::string local_with_addresses =
      kSignature + bytes({0x20, 0x11, 0x00, 0x0c}) + std::string(12, '\x01');
  parse = parse_proxy_header(local_with_addresses);
  ASSERT_EQ(parse.status, Status::kDone);
  EXPECT_TRUE(parse.header.local);
  EXPECT_EQ(parse.consumed, 28u);

  std::string proxy_unspec = kSignature + bytes({0x21, 0x00, 0x00, 0x00});
  parse = parse_proxy_header(proxy_unspec);
  ASSERT_EQ(parse.status, Status::kDone);
  EXPECT_TRUE(parse.header.local);

  // AF_UNIX, STREAM: 216 bytes of paths.
  std::string unix_header = kSignature + bytes({0x21, 0x31, 0x00, 0xd8}) + std::string(216, '\0');
  parse = parse_proxy_header(unix_header);
  ASSERT_EQ(parse.status, Status::kDone);
  EXPECT_TRUE(parse.header.local);
  EXPECT_EQ(parse.consumed, 232u);
}

TEST(ProtocolProxyHeader, V2SkipsTlvs) {
  std::string header = encode_proxy_v2(ep("192.0.2.1:4711"), ep("198.51.100.25:25"));
  // PP2_TYPE_AUTHORITY "mx.example" and a PP2_TYPE_NOOP.
  std::string tlvs = bytes({0x02, 0x00, 0x0a}) + "mx.example" + bytes({0x04, 0x00, 0x02, 0, 0});
  header[15] = static_cast<char>(12 + tlvs.size());
  header += tlvs;
  ProxyParse parse = parse_proxy_header(header + "EHLO x\r\n");
  ASSERT_EQ(parse.status, Status::kDone) << parse.error;
  EXPECT_EQ(parse.consumed, header.size());
  EXPECT_EQ(parse.header.source, ep("192.0.2.1:4711"));
  EXPECT_EQ(parse.header.destination, ep("198.51.100.25:25"));
  expect_prefixes_need_more(header);
}

TEST(ProtocolProxyHeader, V2RejectsBadHeaders) {
  struct Case {
    std::string bytes;
    const char* why;
  };
  const Case cases[] = {
      {std::string("\r\n\r\n\x01", 5), "bad signature byte"},
      {kSignature.substr(0, 11) + "X", "bad signature end"},
      {kSignature + bytes({0x11}), "version 1 in a v2 header"},
      {kSignature + bytes({0x22}), "unknown command"},
      {kSignature + bytes({0x21, 0x41}), "unknown family"},
      {kSignature + bytes({0x21, 0x13}), "unknown transport"},
      {kSignature + bytes({0x21, 0x11, 0x04, 0x01}), "too long"},
      {kSignature + bytes({0x21, 0x11, 0x00, 0x08}) + std::string(8, '\0'), "short v4 block"},
      {kSignature + bytes({0x21, 0x21, 0x00, 0x0c}) + std::string(12, '\0'), "short v6 block"},
  };
  for (const Case& c : cases) {
    ProxyParse parse = parse_proxy_header(c.bytes);
    EXPECT_EQ(parse.status, Status::kInvalid) << c.why;
  }
  ProxyParse too_long = parse_proxy_header(kSignature + bytes({0x21, 0x11, 0x04, 0x01}));
  EXPECT_NE(too_long.error.find("too long"), std::string::npos);
  // 1024 bytes of address block and TLVs is still fine.
  std::string largest = kSignature + bytes({0x21, 0x11, 0x04, 0x00}) + std::string(1024, '\0');
  EXPECT_EQ(parse_proxy_header(largest).status, Status::kDone);
  EXPECT_EQ(parse_proxy_header(largest.substr(0, 1000)).status, Status::kNeedMore);
}

TEST(ProtocolProxyHeader, EmptyNeedsMore) {
  EXPECT_EQ(parse_proxy_header("").status, Status::kNeedMore);
  EXPECT_EQ(parse_proxy_header("\r").status, Status::kNeedMore);  // could be v2
  EXPECT_EQ(parse_proxy_header("\r\n\r\n\r").status, Status::kInvalid);
}

}  // namespace
}  // namespace mxscreen::protocol
