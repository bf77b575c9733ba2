// tests/checks/envelope_test.cc: reject_non_fqdn_sender and reject_non_fqdn_recipient
// (checks/envelope.h) on the paths a client sends, with Postfix's reply texts.
#include "checks/envelope.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

protocol::Path sender(const std::string& argument) {
  std::string error;
  auto args = protocol::parse_mail_from("FROM:" + argument, &error);
  EXPECT_TRUE(args) << argument << ": " << error;
  return args ? args->path : protocol::Path{};
}

protocol::Path recipient(const std::string& argument) {
  std::string error;
  auto args = protocol::parse_rcpt_to("TO:" + argument, &error);
  EXPECT_TRUE(args) << argument << ": " << error;
  return args ? args->path : protocol::Path{};
}

TEST(ChecksEnvelope, NonFqdnSenderGetsPostfixText) {
  EXPECT_EQ(sender_reject_reply(sender("<alice>"), true),
            "504 5.5.2 <alice>: Sender address rejected: need fully-qualified address");
  EXPECT_EQ(sender_reject_reply(sender("<alice@localhost>"), true),
            "504 5.5.2 <alice@localhost>: Sender address rejected: need fully-qualified address");
}

TEST(ChecksEnvelope, QualifiedNullAndLiteralSendersPass) {
  EXPECT_EQ(sender_reject_reply(sender("<alice@example.org>"), true), std::nullopt);
  EXPECT_EQ(sender_reject_reply(sender("<alice@example.org.>"), true), std::nullopt);
  EXPECT_EQ(sender_reject_reply(sender("<alice@[192.0.2.1]>"), true), std::nullopt);
  EXPECT_EQ(sender_reject_reply(sender("<>"), true), std::nullopt);  // bounces
}

TEST(ChecksEnvelope, SenderSwitchOff) {
  EXPECT_EQ(sender_reject_reply(sender("<alice>"), false), std::nullopt);
  EXPECT_EQ(sender_reject_reply(sender("<alice@localhost>"), false), std::nullopt);
}

TEST(ChecksEnvelope, NonFqdnRecipientGetsPostfixText) {
  EXPECT_EQ(recipient_reject_reply(recipient("<postmaster>"), true),
            "504 5.5.2 <postmaster>: Recipient address rejected: need fully-qualified address");
  EXPECT_EQ(recipient_reject_reply(recipient("<bob@mailhost>"), true),
            "504 5.5.2 <bob@mailhost>: Recipient address rejected: need fully-qualified address");
  EXPECT_EQ(recipient_reject_reply(recipient("<bob@example.net>"), true), std::nullopt);
  EXPECT_EQ(recipient_reject_reply(recipient("<bob@[IPv6:2001:db8::1]>"), true), std::nullopt);
  EXPECT_EQ(recipient_reject_reply(recipient("<postmaster>"), false), std::nullopt);
}

TEST(ChecksEnvelope, ReplyShowsTheAddressEscapedAndBounded) {
  protocol::Path path;
  path.address =
      "a\x01"
      "b";
  path.local_part = path.address;
  EXPECT_EQ(sender_reject_reply(path, true),
            "504 5.5.2 <a\\x01b>: Sender address rejected: need fully-qualified address");
  protocol::Path long_path;
  long_path.address = std::string(300, 'x');
  long_path.local_part = long_path.address;
  auto reply = recipient_reject_reply(long_path, true);
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, "504 5.5.2 <" + std::string(255, 'x') +
                        "...>: Recipient address rejected: need fully-qualified address");
}

// The parser's own `why` texts, as the dialogue and ctl explain hand them over.
std::string syntax_reply_of_mail(const std::string& argument) {
  std::string why;
  EXPECT_FALSE(protocol::parse_mail_from(argument, &why)) << argument;
  return address_syntax_reply(why);
}

TEST(ChecksEnvelope, AddressSyntaxReplyIs501Or553ForUndeclaredUnicode) {
  EXPECT_EQ(syntax_reply_of_mail("FROM:<a@b@example.org>"), "501 5.1.7 Bad sender address syntax");
  EXPECT_EQ(syntax_reply_of_mail("FROM:<a@example.org> SIZE=x"),
            "501 5.5.4 Invalid parameter: SIZE");
  EXPECT_EQ(syntax_reply_of_mail("FROM:<j\xc3\xb6rg@example.org>"),
            "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
  std::string why;
  EXPECT_FALSE(protocol::parse_rcpt_to("TO:<b@example.net>extra", &why));
  EXPECT_EQ(address_syntax_reply(why), "501 5.1.3 Bad recipient address syntax");
}

}  // namespace
}  // namespace mxscreen::checks
