// tests/proxy/ctl_state_test.cc: the greylist and cache requests of the admin socket as its
// parser reads them (the socket and the store are test_ctl_state.py's): every form, its bounds,
// and a clear ERR line for each bad one; the cursor survives the trip through one word.
#include "proxy/ctl_state.h"

#include <gtest/gtest.h>

#include "proxy/control.h"

namespace mxscreen::proxy {
namespace {

using Kind = StateRequest::Kind;

ControlRequest parse(const std::string& line) { return parse_control_request(line); }

TEST(CtlState, ListWithFiltersLimitAndCursor) {
  auto r = parse(
      "greylist list --client 192.0.2.7 --sender <A@b.test> --recipient @x.test "
      "--limit 50 --cursor gl%3Ax");
  ASSERT_EQ(r.kind, ControlRequest::Kind::kState) << r.error;
  EXPECT_EQ(r.state.kind, Kind::kGreylistList);
  EXPECT_EQ(r.state.client->network.to_string(), "192.0.2.7");
  EXPECT_TRUE(r.state.client_is_address);
  EXPECT_EQ(*r.state.sender, "A@b.test");
  EXPECT_EQ(*r.state.recipient, "@x.test");
  EXPECT_EQ(r.state.limit, 50u);
  EXPECT_EQ(r.state.cursor, "gl:x");
  auto plain = parse("greylist list");
  EXPECT_EQ(plain.state.limit, StateRequest::kDefaultPage);
  EXPECT_FALSE(plain.state.client);
  EXPECT_FALSE(plain.state.sender);
}

TEST(CtlState, PassAndDropTakeATripletAKeyOrAClient) {
  auto triplet = parse("greylist pass 192.0.2.7 <> u@x.test");
  ASSERT_EQ(triplet.kind, ControlRequest::Kind::kState) << triplet.error;
  EXPECT_EQ(triplet.state.kind, Kind::kGreylistPass);
  EXPECT_EQ(*triplet.state.sender, "");  // the null sender
  EXPECT_EQ(*triplet.state.recipient, "u@x.test");
  auto key = parse("greylist drop gl:192.0.2.0/24:a@b.test:u@x.test");
  EXPECT_EQ(key.state.kind, Kind::kGreylistDrop);
  EXPECT_EQ(key.state.key, "gl:192.0.2.0/24:a@b.test:u@x.test");
  auto client = parse("greylist drop --client 2001:db8::/64");
  ASSERT_EQ(client.kind, ControlRequest::Kind::kState) << client.error;
  EXPECT_FALSE(client.state.client_is_address);
  EXPECT_FALSE(client.state.sender);
  EXPECT_EQ(parse("greylist report --limit 5").state.limit, 5u);
  EXPECT_EQ(parse("greylist report").state.limit, StateRequest::kDefaultReport);
}

TEST(CtlState, IdentityKeyedTripletsAreNamedByTheirIdentity) {
  auto list = parse("greylist list --client ptr=Example.NET");
  ASSERT_EQ(list.kind, ControlRequest::Kind::kState) << list.error;
  EXPECT_EQ(list.state.identity, "ptr=example.net");
  EXPECT_FALSE(list.state.client);
  EXPECT_FALSE(list.state.client_is_address);
  auto pass = parse("greylist pass spf=example.org a@b.test u@x.test");
  ASSERT_EQ(pass.kind, ControlRequest::Kind::kState) << pass.error;
  EXPECT_EQ(pass.state.identity, "spf=example.org");
  EXPECT_EQ(*pass.state.sender, "a@b.test");
  EXPECT_EQ(parse("greylist drop --client spf=example.org").state.identity, "spf=example.org");
  EXPECT_EQ(parse("greylist list --client spf=").error, "ERR invalid address \"spf=\"\n");
  EXPECT_EQ(parse("greylist list --client dkim=example.org").kind, ControlRequest::Kind::kInvalid);
}

TEST(CtlState, CacheRequests) {
  auto show = parse("cache show 2001:db8::1");
  ASSERT_EQ(show.kind, ControlRequest::Kind::kState) << show.error;
  EXPECT_EQ(show.state.kind, Kind::kCacheShow);
  EXPECT_EQ(show.state.client->network.to_string(), "2001:db8::1");
  EXPECT_EQ(parse("cache drop 192.0.2.7").state.kind, Kind::kCacheDrop);
  EXPECT_EQ(parse("cache flush").state.kind, Kind::kCacheFlush);
}

TEST(CtlState, BadRequestsGetOneErrLine) {
  for (const char* line : {"greylist",
                           "greylist frob",
                           "greylist list --limit 0",
                           "greylist list --limit 1001",
                           "greylist list --limit 10x",
                           "greylist list --client 300.1.1.1",
                           "greylist list --nope 1",
                           "greylist list --sender",
                           "greylist list --cursor %4",
                           "greylist list --cursor %zz",
                           "greylist pass",
                           "greylist pass 192.0.2.7 a@b",
                           "greylist pass 192.0.2.7 a@b <>",
                           "greylist drop gl:junk",
                           "greylist pass --client",
                           "greylist pass --client x y",
                           "greylist report --limit 101",
                           "greylist report --client 192.0.2.7",
                           "cache",
                           "cache show",
                           "cache show 192.0.2.0/24",
                           "cache flush now",
                           "cache drop \x01"}) {
    auto r = parse(line);
    EXPECT_EQ(r.kind, ControlRequest::Kind::kInvalid) << line;
    EXPECT_TRUE(r.error.starts_with("ERR ")) << line << ": " << r.error;
    EXPECT_EQ(r.error.find('\n'), r.error.size() - 1) << line;
    EXPECT_EQ(r.error.find('\x01'), std::string::npos) << line;
  }
  EXPECT_EQ(parse("greylist list --limit 0").error, "ERR invalid --limit \"0\" (1..1000)\n");
}

TEST(CtlState, CursorsTravelAsOnePrintableWord) {
  std::string raw = std::string("gl:10.0.0.0/24:a b%c\x01\xff:z", 23);
  std::string word = encode_cursor(raw);
  EXPECT_EQ(word.find_first_of(" \x01\xff"), std::string::npos);
  EXPECT_EQ(decode_cursor(word), raw);
  EXPECT_EQ(encode_cursor("1234"), "1234");  // a Redis SCAN cursor as it is
  EXPECT_FALSE(decode_cursor("%"));
  EXPECT_FALSE(decode_cursor("ab%1"));
  EXPECT_FALSE(decode_cursor("%g0"));
}

}  // namespace
}  // namespace mxscreen::proxy
