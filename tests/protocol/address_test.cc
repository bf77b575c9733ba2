// tests/protocol/address_test.cc: IPv4/IPv6 parsing and RFC 5952 formatting, endpoints, CIDR
// networks and masking.
#include "protocol/address.h"

#include <gtest/gtest.h>

namespace mxscreen::protocol {
namespace {

std::string canonical(std::string_view text) {
  auto address = IpAddress::parse(text);
  return address ? address->to_string() : "<invalid>";
}

TEST(ProtocolAddress, ParsesIpv4) {
  auto address = IpAddress::parse("192.0.2.1");
  ASSERT_TRUE(address);
  EXPECT_TRUE(address->is_v4());
  EXPECT_EQ(*address, IpAddress::v4(192, 0, 2, 1));
  EXPECT_EQ(address->bytes[4], 0);
  EXPECT_EQ(canonical("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(canonical("255.255.255.255"), "255.255.255.255");
}

TEST(ProtocolAddress, RejectsBadIpv4) {
  for (const char* text :
       {"",           "1",        "1.2.3",    "1.2.3.4.5",  "256.1.1.1",  "1.2.3.256", "1.2.3.4 ",
        " 1.2.3.4",   "x1.2.3.4", "1.2.3.4x", "1..3.4",     "1.2.3.",     ".1.2.3",    "01.2.3.4",
        "1.2.3.0004", "1.2.3.-4", "1.2.3.+4", "1234.1.1.1", "1.2.3.4/24", "1.2.3.4:25"}) {
    EXPECT_FALSE(IpAddress::parse(text)) << text;
  }
}

TEST(ProtocolAddress, ParsesIpv6) {
  auto address = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(address);
  EXPECT_FALSE(address->is_v4());
  EXPECT_EQ(address->bytes[0], 0x20);
  EXPECT_EQ(address->bytes[1], 0x01);
  EXPECT_EQ(address->bytes[2], 0x0d);
  EXPECT_EQ(address->bytes[3], 0xb8);
  EXPECT_EQ(address->bytes[15], 0x01);
  EXPECT_EQ(canonical("::"), "::");
  EXPECT_EQ(canonical("::1"), "::1");
  EXPECT_EQ(canonical("1::"), "1::");
  EXPECT_EQ(canonical("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  EXPECT_EQ(canonical("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
  EXPECT_EQ(canonical("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8");
}

TEST(ProtocolAddress, FormatsRfc5952) {
  // RFC 5952 section 4: lower case, no leading zeros, longest run compressed, first on a tie,
  // a single zero group is not compressed.
  EXPECT_EQ(canonical("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
  EXPECT_EQ(canonical("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(canonical("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  EXPECT_EQ(canonical("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(canonical("2001:db8::0:1"), "2001:db8::1");
  EXPECT_EQ(canonical("0:0:0:0:0:0:0:0"), "::");
  EXPECT_EQ(canonical("fe80:0:0:0:0:0:0:0"), "fe80::");
  EXPECT_EQ(canonical("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789"),
            "abcd:ef01:2345:6789:abcd:ef01:2345:6789");
}

TEST(ProtocolAddress, EmbeddedIpv4Tail) {
  EXPECT_EQ(canonical("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
  EXPECT_EQ(canonical("::192.0.2.1"), "::c000:201");
  EXPECT_EQ(canonical("1:2:3:4:5:6:1.2.3.4"), "1:2:3:4:5:6:102:304");
  EXPECT_FALSE(IpAddress::parse("1:2:3:4:5:6:7:1.2.3.4"));
  EXPECT_FALSE(IpAddress::parse("::1.2.3.4:5"));
  EXPECT_FALSE(IpAddress::parse("::1.2.3"));
  EXPECT_FALSE(IpAddress::parse("::256.1.1.1"));
}

TEST(ProtocolAddress, MappedIpv4BecomesIpv4) {
  auto mapped = IpAddress::parse("::ffff:1.2.3.4");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->is_v4());
  EXPECT_EQ(*mapped, IpAddress::v4(1, 2, 3, 4));
  EXPECT_EQ(canonical("::FFFF:c000:0201"), "192.0.2.1");
  EXPECT_EQ(canonical("0:0:0:0:0:ffff:192.0.2.1"), "192.0.2.1");
}

TEST(ProtocolAddress, AsV6) {
  IpAddress v4 = IpAddress::v4(192, 0, 2, 1);
  IpAddress v6 = v4.as_v6();
  EXPECT_FALSE(v6.is_v4());
  EXPECT_EQ(v6.to_string(), "::ffff:192.0.2.1");
  EXPECT_EQ(*IpAddress::parse(v6.to_string()), v4);
  auto plain = *IpAddress::parse("2001:db8::1");
  EXPECT_EQ(plain.as_v6(), plain);
}

TEST(ProtocolAddress, RejectsBadIpv6) {
  for (const char* text : {":",
                           ":::",
                           "1:2",
                           "1:2:3:4:5:6:7",
                           "1:2:3:4:5:6:7:8:9",
                           "1::2::3",
                           ":1::2",
                           "1::2:",
                           "12345::1",
                           "g::1",
                           "::1%eth0",
                           "fe80::1%1",
                           " ::1",
                           "::1 ",
                           "[::1]",
                           "1:2:3:4:5:6:7:8::",
                           "::1:2:3:4:5:6:7:8",
                           "1:2:3:4::5:6:7:8",
                           "::-1",
                           "2001:db8::1/64"}) {
    EXPECT_FALSE(IpAddress::parse(text)) << text;
  }
}

TEST(ProtocolAddress, RoundTripsCanonicalText) {
  for (const char* text : {"192.0.2.1", "10.0.0.0", "2001:db8::1", "::", "::1", "fe80::1:2",
                           "2001:db8:1:2:3:4:5:6", "1::", "64:ff9b::c000:221", "2001:0:0:1::1"}) {
    EXPECT_EQ(canonical(text), text);
  }
}

TEST(ProtocolEndpoint, Parses) {
  auto v4 = Endpoint::parse("1.2.3.4:25");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address, IpAddress::v4(1, 2, 3, 4));
  EXPECT_EQ(v4->port, 25);
  auto v6 = Endpoint::parse("[::1]:25");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address.to_string(), "::1");
  EXPECT_EQ(v6->port, 25);
  auto bracketed_v4 = Endpoint::parse("[192.0.2.1]:65535");
  ASSERT_TRUE(bracketed_v4);
  EXPECT_EQ(bracketed_v4->port, 65535);
  auto mapped = Endpoint::parse("[::ffff:192.0.2.1]:4711");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->address.is_v4());
}

TEST(ProtocolEndpoint, RejectsBad) {
  for (const char* text : {"",
                           "1.2.3.4",
                           "1.2.3.4:",
                           "1.2.3.4:0",
                           "1.2.3.4:65536",
                           "1.2.3.4:99999",
                           "1.2.3.4:-1",
                           "1.2.3.4:+25",
                           "1.2.3.4:25x",
                           "1.2.3.4: 25",
                           "::1:25",
                           "[::1]",
                           "[::1]25",
                           "[::1]:",
                           "[::1:25",
                           "::1]:25",
                           "[::1]:0",
                           "host:25",
                           "1.2.3.4:123456",
                           "[]:25"}) {
    EXPECT_FALSE(Endpoint::parse(text)) << text;
  }
}

TEST(ProtocolEndpoint, Formats) {
  auto v4 = *Endpoint::parse("192.0.2.1:25");
  EXPECT_EQ(v4.to_string(), "192.0.2.1:25");
  EXPECT_EQ(v4.log_string(), "[192.0.2.1]:25");
  auto v6 = *Endpoint::parse("[2001:DB8:0::1]:4711");
  EXPECT_EQ(v6.to_string(), "[2001:db8::1]:4711");
  EXPECT_EQ(v6.log_string(), "[2001:db8::1]:4711");
  EXPECT_EQ(*Endpoint::parse(v6.to_string()), v6);
}

TEST(ProtocolCidr, ParsesAndClearsHostBits) {
  auto net = Cidr::parse("192.0.2.77/24");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->network, IpAddress::v4(192, 0, 2, 0));
  EXPECT_EQ(net->prefix, 24);
  EXPECT_EQ(net->to_string(), "192.0.2.0/24");
  EXPECT_EQ(Cidr::parse("2001:db8:ffff::1/32")->to_string(), "2001:db8::/32");
  EXPECT_EQ(Cidr::parse("10.1.2.3")->to_string(), "10.1.2.3/32");
  EXPECT_EQ(Cidr::parse("2001:db8::1")->to_string(), "2001:db8::1/128");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0")->to_string(), "0.0.0.0/0");
  EXPECT_EQ(Cidr::parse("::/0")->to_string(), "::/0");
  EXPECT_EQ(Cidr::parse("10.255.255.255/9")->to_string(), "10.128.0.0/9");
}

TEST(ProtocolCidr, MappedNetworkIsIpv4) {
  auto net = Cidr::parse("::ffff:192.0.2.0/120");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->to_string(), "192.0.2.0/24");
  EXPECT_TRUE(net->contains(IpAddress::v4(192, 0, 2, 9)));
}

TEST(ProtocolCidr, RejectsBad) {
  for (const char* text :
       {"", "/24", "192.0.2.0/", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/-1", "192.0.2.0/2x",
        "192.0.2.0/24/1", "192.0.2.0 /24", "192.0.2.0/ 24", "192.0.2/24", "192.0.2.0/0024"}) {
    EXPECT_FALSE(Cidr::parse(text)) << text;
  }
}

TEST(ProtocolCidr, Contains) {
  auto net = *Cidr::parse("192.0.2.0/24");
  EXPECT_TRUE(net.contains(*IpAddress::parse("192.0.2.0")));
  EXPECT_TRUE(net.contains(*IpAddress::parse("192.0.2.255")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("192.0.3.0")));
  EXPECT_TRUE(net.contains(*IpAddress::parse("::ffff:192.0.2.1")));
  EXPECT_FALSE(net.contains(IpAddress::v4(192, 0, 2, 1).as_v6()));

  auto v6 = *Cidr::parse("2001:db8::/32");
  EXPECT_TRUE(v6.contains(*IpAddress::parse("2001:db8:1234::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("2001:db9::1")));
  EXPECT_FALSE(v6.contains(IpAddress::v4(32, 1, 13, 184)));  // same leading bytes, other family

  auto all_v4 = *Cidr::parse("0.0.0.0/0");
  EXPECT_TRUE(all_v4.contains(IpAddress::v4(8, 8, 8, 8)));
  EXPECT_FALSE(all_v4.contains(*IpAddress::parse("::1")));
  auto odd = *Cidr::parse("10.0.0.0/9");
  EXPECT_TRUE(odd.contains(IpAddress::v4(10, 127, 255, 255)));
  EXPECT_FALSE(odd.contains(IpAddress::v4(10, 128, 0, 0)));
}

TEST(ProtocolAddress, MaskAddress) {
  IpAddress v4 = IpAddress::v4(192, 0, 2, 77);
  EXPECT_EQ(mask_address(v4, 24).to_string(), "192.0.2.0");
  EXPECT_EQ(mask_address(v4, 32), v4);
  EXPECT_EQ(mask_address(v4, 0).to_string(), "0.0.0.0");
  EXPECT_EQ(mask_address(v4, 27).to_string(), "192.0.2.64");
  EXPECT_EQ(mask_address(v4, 99), v4);  // clamped to the family's width
  EXPECT_EQ(mask_address(v4, -3).to_string(), "0.0.0.0");
  auto v6 = *IpAddress::parse("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
  EXPECT_EQ(mask_address(v6, 64).to_string(), "2001:db8:aaaa:bbbb::");
  EXPECT_EQ(mask_address(v6, 128), v6);
  EXPECT_EQ(mask_address(v6, 33).to_string(), "2001:db8:8000::");
}

// IPv6 clients rotating through their /64 are one client; IPv4 clients are their address.
TEST(ProtocolAddress, ClientIdentityAggregatesIpv6ByPrefix) {
  auto a = *IpAddress::parse("2001:db8:1:2::5");
  auto b = *IpAddress::parse("2001:db8:1:2:ffff:1234:5678:9abc");
  auto other = *IpAddress::parse("2001:db8:1:3::5");
  EXPECT_EQ(client_identity(a, 64), "2001:db8:1:2::/64");
  EXPECT_EQ(client_identity(b, 64), "2001:db8:1:2::/64");
  EXPECT_EQ(client_identity(other, 64), "2001:db8:1:3::/64");
  EXPECT_EQ(client_network(a, 64).network, client_network(b, 64).network);
  EXPECT_NE(client_network(a, 64).network, client_network(other, 64).network);
  // Postfix 3.8's /84 for rate limits: five groups and the top 4 bits of the sixth.
  EXPECT_EQ(client_identity(b, 84), "2001:db8:1:2:ffff:1000::/84");
  EXPECT_EQ(client_network(a, 84).network, *IpAddress::parse("2001:db8:1:2::"));
  EXPECT_EQ(client_identity(a, 128), "2001:db8:1:2::5");  // exact: the bare address
  EXPECT_EQ(client_network(a, 128).network, a);
  EXPECT_EQ(client_identity(a, 200), "2001:db8:1:2::5");  // clamped
  auto v4 = IpAddress::v4(192, 0, 2, 77);
  EXPECT_EQ(client_identity(v4, 64), "192.0.2.77");  // the IPv6 prefix never applies to IPv4
  EXPECT_EQ(client_network(v4, 64).network, v4);
  EXPECT_EQ(client_network(v4, 64).prefix, 32);
  auto mapped = *IpAddress::parse("::ffff:192.0.2.77");  // already IPv4 after parsing
  EXPECT_EQ(client_identity(mapped, 64), "192.0.2.77");
}

}  // namespace
}  // namespace mxscreen::protocol
