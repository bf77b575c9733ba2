// tests/proxy/control_request_test.cc: the admin socket's request line parser.
#include <gtest/gtest.h>

#include "proxy/control.h"

namespace mxscreen::proxy {
namespace {

using Kind = ControlRequest::Kind;

TEST(ControlRequest, KnownRequests) {
  EXPECT_EQ(parse_control_request("bans").kind, Kind::kBans);
  EXPECT_EQ(parse_control_request("  stats ").kind, Kind::kStats);
  auto unban = parse_control_request("unban 192.0.2.7");
  EXPECT_EQ(unban.kind, Kind::kUnban);
  EXPECT_EQ(unban.address.to_string(), "192.0.2.7");
  auto ban = parse_control_request("ban 2001:db8::1 90m");
  EXPECT_EQ(ban.kind, Kind::kBan);
  EXPECT_EQ(ban.address.to_string(), "2001:db8::1");
  EXPECT_EQ(ban.duration, std::chrono::seconds(5400));
}

TEST(ControlRequest, BadRequestsGetOnePrintableErrLine) {
  auto unknown = parse_control_request("frob\x01nicate");
  EXPECT_EQ(unknown.kind, Kind::kInvalid);
  EXPECT_EQ(unknown.error,
            "ERR unknown request \"frob\\x01nicate\"; expected: bans | unban ADDR | ban ADDR "
            "DURATION | stats | greylist list|pass|drop|report ... | cache show|drop|flush ... | "
            "explain ADDR ...\n");
  EXPECT_EQ(parse_control_request("unban 300.1.1.1").error, "ERR invalid address \"300.1.1.1\"\n");
  EXPECT_EQ(parse_control_request("ban 192.0.2.7 0s").kind, Kind::kInvalid);
  EXPECT_EQ(parse_control_request("ban 192.0.2.7 -5m").kind, Kind::kInvalid);
  EXPECT_EQ(parse_control_request("bans extra").kind, Kind::kInvalid);
  EXPECT_EQ(parse_control_request("").kind, Kind::kInvalid);
}

}  // namespace
}  // namespace mxscreen::proxy
