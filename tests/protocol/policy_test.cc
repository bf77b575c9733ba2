// tests/protocol/policy_test.cc: the Postfix policy delegation protocol: a request as Postfix
// sends it, split input, several requests in one read, the size and attribute bounds, lines
// that are not name=value, and the answer's format.
#include "protocol/policy.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/escape.h"

namespace mxscreen::protocol {
namespace {

// What Postfix 3.7's smtpd sends for one RCPT (SMTPD_POLICY_README), shortened.
constexpr std::string_view kRcptRequest =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=192.0.2.7\n"
    "client_name=unknown\n"
    "client_port=4711\n"
    "helo_name=mail.example.org\n"
    "sender=alice@example.org\n"
    "recipient=user@example.test\n"
    "recipient_count=0\n"
    "queue_id=\n"
    "instance=123.456.7\n"
    "\n";

TEST(ProtocolPolicy, ParsesAPostfixRequest) {
  PolicyParser parser;
  parser.feed(kRcptRequest);
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.attributes.size(), 12u);
  EXPECT_EQ(request.get("request"), "smtpd_access_policy");
  EXPECT_EQ(request.get("client_address"), "192.0.2.7");
  EXPECT_EQ(request.get("sender"), "alice@example.org");
  EXPECT_EQ(request.get("recipient"), "user@example.test");
  EXPECT_EQ(request.get("queue_id"), "");  // present, empty
  EXPECT_EQ(request.get("missing"), "");   // absent
  EXPECT_EQ(parser.next(&request), PolicyParse::kNeedMore);
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(ProtocolPolicy, ValueKeepsEverythingAfterTheFirstEquals) {
  PolicyParser parser;
  parser.feed("sender=prvs=1234=a@example.org\nccert_subject=CN=x, O=y\n\n");
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("sender"), "prvs=1234=a@example.org");
  EXPECT_EQ(request.get("ccert_subject"), "CN=x, O=y");
}

TEST(ProtocolPolicy, ByteByByteInput) {
  PolicyParser parser;
  PolicyRequest request;
  for (std::size_t i = 0; i + 1 < kRcptRequest.size(); ++i) {
    parser.feed(kRcptRequest.substr(i, 1));
    ASSERT_EQ(parser.next(&request), PolicyParse::kNeedMore) << "after byte " << i;
  }
  parser.feed("\n");
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("recipient"), "user@example.test");
  EXPECT_EQ(request.attributes.size(), 12u);
}

TEST(ProtocolPolicy, SeveralRequestsInOneRead) {
  PolicyParser parser;
  std::string both = "recipient=a@x\n\nrecipient=b@x\r\n\r\nrecipient=c";
  parser.feed(both);
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("recipient"), "a@x");
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("recipient"), "b@x");  // CR LF tolerated
  EXPECT_EQ(parser.next(&request), PolicyParse::kNeedMore);
  EXPECT_EQ(parser.buffered(), 11u);
  parser.feed("@x\n\n");
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("recipient"), "c@x");
  EXPECT_EQ(request.attributes.size(), 1u);
}

TEST(ProtocolPolicy, EmptyRequestIsARequestWithoutAttributes) {
  PolicyParser parser;
  parser.feed("\n");
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_TRUE(request.attributes.empty());
}

TEST(ProtocolPolicy, LaterDuplicateWins) {
  PolicyParser parser;
  parser.feed("recipient=a@x\nrecipient=b@x\n\n");
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  EXPECT_EQ(request.get("recipient"), "b@x");
}

TEST(ProtocolPolicy, RequestLargerThanTheLimitIsRefused) {
  PolicyParser parser(PolicyLimits{64, 128});
  PolicyRequest request;
  parser.feed("recipient=");
  EXPECT_EQ(parser.next(&request), PolicyParse::kNeedMore);
  parser.feed(std::string(54, 'a'));  // 64 bytes: not over the limit yet
  EXPECT_EQ(parser.next(&request), PolicyParse::kNeedMore);
  parser.feed("a");  // 65 bytes without the end of the request
  EXPECT_EQ(parser.next(&request), PolicyParse::kTooLarge);
}

TEST(ProtocolPolicy, RequestOfExactlyTheLimitPasses) {
  std::string text = "r=" + std::string(60, 'x') + "\n\n";  // 64 bytes
  PolicyParser parser(PolicyLimits{64, 128});
  parser.feed(text);
  PolicyRequest request;
  ASSERT_EQ(parser.next(&request), PolicyParse::kRequest);
  PolicyParser tight(PolicyLimits{63, 128});
  tight.feed(text);
  EXPECT_EQ(tight.next(&request), PolicyParse::kTooLarge);
}

TEST(ProtocolPolicy, MegabyteLineIsRefusedNotBuffered) {
  PolicyParser parser;
  PolicyRequest request;
  std::string chunk(4096, 'z');
  PolicyParse status = PolicyParse::kNeedMore;
  std::size_t fed = 0;
  while (status == PolicyParse::kNeedMore && fed < (1u << 20)) {
    parser.feed(chunk);
    fed += chunk.size();
    status = parser.next(&request);
  }
  EXPECT_EQ(status, PolicyParse::kTooLarge);
  EXPECT_LE(fed, 16384u + chunk.size());
}

TEST(ProtocolPolicy, TooManyAttributes) {
  PolicyParser parser(PolicyLimits{1 << 20, 3});
  parser.feed("a=1\nb=2\nc=3\nd=4\n\n");
  PolicyRequest request;
  EXPECT_EQ(parser.next(&request), PolicyParse::kTooManyAttributes);
  PolicyParser ok(PolicyLimits{1 << 20, 3});
  ok.feed("a=1\nb=2\nc=3\n\n");
  EXPECT_EQ(ok.next(&request), PolicyParse::kRequest);
}

TEST(ProtocolPolicy, GarbageLinesAreRefused) {
  const std::string_view bads[] = {"GET / HTTP/1.0\r\n\r\n", "=value\n\n", "recipient\n\n",
                                   std::string_view("a=b\0c\n\n", 7), "\x16\x03\x01\x02\n\n"};
  for (std::string_view bad : bads) {
    PolicyParser parser;
    parser.feed(bad);
    PolicyRequest request;
    EXPECT_EQ(parser.next(&request), PolicyParse::kBadLine) << printable(bad);
  }
}

TEST(ProtocolPolicy, FormatsTheAction) {
  EXPECT_EQ(format_policy_action("DUNNO"), "action=DUNNO\n\n");
  EXPECT_EQ(format_policy_action("DEFER_IF_PERMIT 4.2.0 Greylisted"),
            "action=DEFER_IF_PERMIT 4.2.0 Greylisted\n\n");
  EXPECT_EQ(format_policy_action("DUNNO\n\nINJECTED"), "action=DUNNO  INJECTED\n\n");
}

}  // namespace
}  // namespace mxscreen::protocol
