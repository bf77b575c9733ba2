// tests/protocol/smtp_command_test.cc: SMTP command parsing: verbs, MAIL/RCPT paths and ESMTP
// parameters, HELO and FQDN checks with Postfix's semantics, non-SMTP command detection.
#include "protocol/smtp_command.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mxscreen::protocol {
namespace {

MailArgs mail_ok(std::string_view argument) {
  std::string error;
  auto args = parse_mail_from(argument, &error);
  EXPECT_TRUE(args) << argument << ": " << error;
  return args.value_or(MailArgs{});
}

MailArgs rcpt_ok(std::string_view argument) {
  std::string error;
  auto args = parse_rcpt_to(argument, &error);
  EXPECT_TRUE(args) << argument << ": " << error;
  return args.value_or(MailArgs{});
}

std::string mail_error(std::string_view argument) {
  std::string error;
  EXPECT_FALSE(parse_mail_from(argument, &error)) << argument;
  return error;
}

std::string rcpt_error(std::string_view argument, bool smtputf8 = false) {
  std::string error;
  EXPECT_FALSE(parse_rcpt_to(argument, &error, smtputf8)) << argument;
  return error;
}

TEST(ProtocolSmtpCommand, VerbsAreCaseInsensitive) {
  struct Case {
    std::string_view line;
    Verb verb;
  };
  const Case cases[] = {
      {"EHLO x", Verb::kEhlo},       {"helo x", Verb::kHelo},
      {"Mail FROM:<>", Verb::kMail}, {"rcpt TO:<a@b>", Verb::kRcpt},
      {"DATA", Verb::kData},         {"bdat 10 LAST", Verb::kBdat},
      {"RSET", Verb::kRset},         {"noop", Verb::kNoop},
      {"QUIT", Verb::kQuit},         {"VRFY a", Verb::kVrfy},
      {"EXPN a", Verb::kExpn},       {"Help", Verb::kHelp},
      {"StartTLS", Verb::kStarttls}, {"AUTH PLAIN", Verb::kAuth},
      {"ETRN a", Verb::kEtrn},       {"XCLIENT ADDR=1.2.3.4", Verb::kUnknown},
      {"EHLOx", Verb::kUnknown},     {"", Verb::kUnknown},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_command(c.line).verb, c.verb) << c.line;
}

TEST(ProtocolSmtpCommand, SplitsVerbAndArgument) {
  auto cmd = parse_command("MAIL FROM:<a@b> SIZE=10  ");
  EXPECT_EQ(cmd.verb_text, "MAIL");
  EXPECT_EQ(cmd.argument, "FROM:<a@b> SIZE=10");
  cmd = parse_command("  ehlo\tclient.example ");
  EXPECT_EQ(cmd.verb, Verb::kEhlo);
  EXPECT_EQ(cmd.verb_text, "ehlo");
  EXPECT_EQ(cmd.argument, "client.example");
  cmd = parse_command("QUIT");
  EXPECT_EQ(cmd.argument, "");
  cmd = parse_command("   ");
  EXPECT_EQ(cmd.verb, Verb::kUnknown);
  EXPECT_EQ(cmd.verb_text, "");
}

TEST(ProtocolSmtpPath, PlainAndNull) {
  auto args = mail_ok("FROM:<user@example.org>");
  EXPECT_EQ(args.path.address, "user@example.org");
  EXPECT_EQ(args.path.local_part, "user");
  EXPECT_EQ(args.path.domain, "example.org");
  EXPECT_FALSE(args.path.null_path);
  EXPECT_TRUE(args.params.empty());

  args = mail_ok("from:<>");
  EXPECT_TRUE(args.path.null_path);
  EXPECT_EQ(args.path.address, "");

  args = rcpt_ok("To:<Postmaster>");
  EXPECT_EQ(args.path.local_part, "Postmaster");
  EXPECT_EQ(args.path.domain, "");
}

TEST(ProtocolSmtpPath, PostfixLeniency) {
  EXPECT_EQ(mail_ok("FROM: <user@example.org>").path.address, "user@example.org");
  EXPECT_EQ(mail_ok("FROM:user@example.org").path.address, "user@example.org");
  EXPECT_EQ(mail_ok("FROM: <>").path.null_path, true);
  auto args = rcpt_ok("TO:user@example.org NOTIFY=NEVER");
  EXPECT_EQ(args.path.address, "user@example.org");
  ASSERT_EQ(args.params.size(), 1u);
  EXPECT_EQ(args.params[0].keyword, "NOTIFY");
  EXPECT_EQ(mail_ok("FROM:<a.-b+tag@example.org.>").path.domain, "example.org.");
}

TEST(ProtocolSmtpPath, SourceRouteIsDropped) {
  auto args = rcpt_ok("TO:<@relay1.example,@relay2.example:user@example.org>");
  EXPECT_EQ(args.path.address, "user@example.org");
  EXPECT_EQ(args.path.local_part, "user");
  EXPECT_EQ(args.path.domain, "example.org");
}

TEST(ProtocolSmtpPath, ControlCharactersAreRefused) {
  // repro/sourceroute_cr.bin (issue 13): bare CRs inside a source route were forwarded to the
  // backend byte for byte.
  for (std::string arg :
       {std::string("FROM:<@a\rXCLIENT ADDR=127.0.0.1\r@b:x@example.org>"),
        std::string("FROM:<@a\rb:u@example.com>"), std::string("FROM:<a\r@b.example>"),
        std::string("FROM:<a@b.example\x7f>"), std::string("FROM:<a\x00b@c.example>", 20),
        std::string("FROM:a\rb@c.example"), std::string("FROM:<a\tb@c.example>"),
        std::string("FROM:<@a.example,@b\x1b:x@example.org>")}) {
    EXPECT_EQ(mail_error(arg), "5.1.7 Bad sender address syntax") << arg;
    EXPECT_EQ(rcpt_error("TO" + arg.substr(4)), "5.1.3 Bad recipient address syntax") << arg;
  }
  EXPECT_EQ(mail_error("FROM:<@a.example,:x@example.org>"), "5.1.7 Bad sender address syntax");
  EXPECT_EQ(mail_error("FROM:<@a.example,x:x@example.org>"), "5.1.7 Bad sender address syntax");
  EXPECT_EQ(mail_ok("FROM:<@a.example,@[192.0.2.1]:x@example.org>").path.address, "x@example.org");
}

TEST(ProtocolSmtpPath, QuotedLocalPart) {
  auto args = mail_ok("FROM:<\"john smith\"@example.org> SIZE=5");
  EXPECT_EQ(args.path.address, "\"john smith\"@example.org");
  EXPECT_EQ(args.path.local_part, "\"john smith\"");
  EXPECT_EQ(args.path.domain, "example.org");
  ASSERT_EQ(args.params.size(), 1u);

  args = rcpt_ok("TO:<\"a>b\\\"c\"@example.org>");
  EXPECT_EQ(args.path.local_part, "\"a>b\\\"c\"");
  args = rcpt_ok("TO:\"a b\"@example.org");
  EXPECT_EQ(args.path.local_part, "\"a b\"");
}

TEST(ProtocolSmtpPath, AddressLiterals) {
  auto args = rcpt_ok("TO:<postmaster@[192.0.2.1]>");
  EXPECT_EQ(args.path.domain, "[192.0.2.1]");
  args = rcpt_ok("TO:<postmaster@[IPv6:2001:db8::1]>");
  EXPECT_EQ(args.path.domain, "[IPv6:2001:db8::1]");
  args = rcpt_ok("TO:<postmaster@[ipv6:::1]>");
  EXPECT_EQ(args.path.domain, "[ipv6:::1]");
  EXPECT_EQ(rcpt_error("TO:<a@[192.0.2.256]>"), "5.1.3 Bad recipient address syntax");
  EXPECT_EQ(rcpt_error("TO:<a@[2001:db8::1]>"), "5.1.3 Bad recipient address syntax");
  EXPECT_EQ(rcpt_error("TO:<a@[IPv6:192.0.2.1]>"), "5.1.3 Bad recipient address syntax");
  EXPECT_EQ(rcpt_error("TO:<a@[x-tag:content]>"), "5.1.3 Bad recipient address syntax");
  EXPECT_EQ(rcpt_error("TO:<a@[192.0.2.1>"), "5.1.3 Bad recipient address syntax");
}

TEST(ProtocolSmtpPath, EsmtpParameters) {
  auto args =
      mail_ok("FROM:<a@example.org> SIZE=100 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ314159+2Bx");
  ASSERT_EQ(args.params.size(), 5u);
  EXPECT_EQ(args.params[0].keyword, "SIZE");
  EXPECT_EQ(args.params[0].value, "100");
  EXPECT_TRUE(args.params[0].has_value);
  EXPECT_EQ(args.params[1].keyword, "BODY");
  EXPECT_EQ(args.params[1].value, "8bitmime");
  EXPECT_EQ(args.params[2].keyword, "SMTPUTF8");
  EXPECT_FALSE(args.params[2].has_value);
  EXPECT_EQ(args.params[3].value, "HDRS");
  EXPECT_EQ(args.params[4].keyword, "ENVID");
  EXPECT_EQ(args.params[4].value, "QQ314159+2Bx");

  args = rcpt_ok("TO:<a@example.org>   NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40example.org");
  ASSERT_EQ(args.params.size(), 2u);
  EXPECT_EQ(args.params[0].value, "SUCCESS,FAILURE");
  EXPECT_EQ(args.params[1].keyword, "ORCPT");
  EXPECT_EQ(args.params[1].value, "rfc822;a+40example.org");

  args = mail_ok("FROM:<> X-UNKNOWN=1 XFLAG");
  ASSERT_EQ(args.params.size(), 2u);
  EXPECT_EQ(args.params[1].keyword, "XFLAG");
}

TEST(ProtocolSmtpPath, SyntaxErrors) {
  EXPECT_EQ(mail_error("<a@b>"), "5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(mail_error("FROM:"), "5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(mail_error("FROM"), "5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(rcpt_error("FROM:<a@b>"), "5.5.4 Syntax: RCPT TO:<address>");
  EXPECT_EQ(rcpt_error(""), "5.5.4 Syntax: RCPT TO:<address>");

  const char* bad_senders[] = {
      "FROM:<a@b",    "FROM:a@b>",     "FROM:<<a@b>>",    "FROM:<a@b>SIZE=1",
      "FROM:<a b@c>", "FROM:<\"a@b>",  "FROM:<a@>",       "FROM:<@b>",
      "FROM:<a@b@c>", "FROM:<a@b..c>", "FROM:<a@b c>",    "FROM:<a(b)@c>",
      "FROM:<a@b,c>", "FROM:<@r:>",    "FROM:<\"a\"b@c>", "FROM:<a@b\x01>",
  };
  for (const char* arg : bad_senders) {
    EXPECT_EQ(mail_error(arg), "5.1.7 Bad sender address syntax") << arg;
  }
  EXPECT_EQ(rcpt_error("TO:<>"), "5.1.3 Bad recipient address syntax");
  EXPECT_EQ(rcpt_error("TO:<a@b"), "5.1.3 Bad recipient address syntax");
}

TEST(ProtocolSmtpPath, ParameterErrors) {
  EXPECT_EQ(mail_error("FROM:<a@b> =1"), "5.5.4 Invalid parameter syntax");
  EXPECT_EQ(mail_error("FROM:<a@b> -X=1"), "5.5.4 Invalid parameter syntax");
  EXPECT_EQ(mail_error("FROM:<a@b> SI_ZE=1"), "5.5.4 Invalid parameter syntax");
  EXPECT_EQ(mail_error("FROM:<a@b> SIZE="), "5.5.4 Invalid parameter: SIZE");
  EXPECT_EQ(mail_error("FROM:<a@b> SIZE=abc"), "5.5.4 Invalid parameter: SIZE");
  EXPECT_EQ(mail_error("FROM:<a@b> SIZE"), "5.5.4 Invalid parameter: SIZE");
  EXPECT_EQ(mail_error("FROM:<a@b> BODY=9BIT"), "5.5.4 Invalid parameter: BODY");
  EXPECT_EQ(mail_error("FROM:<a@b> SMTPUTF8=yes"), "5.5.4 Invalid parameter: SMTPUTF8");
  EXPECT_EQ(mail_error("FROM:<a@b> RET=ALL"), "5.5.4 Invalid parameter: RET");
  EXPECT_EQ(mail_error("FROM:<a@b> X=a=b"), "5.5.4 Invalid parameter: X");
  EXPECT_EQ(rcpt_error("TO:<a@b> NOTIFY=SUCCESS,NEVER"), "5.5.4 Invalid parameter: NOTIFY");
  EXPECT_EQ(rcpt_error("TO:<a@b> ORCPT=a@b"), "5.5.4 Invalid parameter: ORCPT");
  EXPECT_EQ(mail_error("FROM:<a@b> SIZE=1 size=2"), "5.5.4 Duplicate parameter: SIZE");
}

TEST(ProtocolSmtpPath, EightBitNeedsSmtputf8) {
  EXPECT_EQ(mail_error("FROM:<j\xc3\xb6rg@example.org>"),
            "5.6.7 Must declare SMTPUTF8 to send unicode address");
  auto args = mail_ok(
      "FROM:<j\xc3\xb6rg@b\xc3\xbc"
      "cher.example> SMTPUTF8");
  EXPECT_EQ(args.path.local_part, "j\xc3\xb6rg");
  EXPECT_EQ(rcpt_error("TO:<j\xc3\xb6rg@example.org>"),
            "5.6.7 Must declare SMTPUTF8 to send unicode address");
  std::string error;
  EXPECT_TRUE(parse_rcpt_to("TO:<j\xc3\xb6rg@example.org>", &error, true));
  EXPECT_EQ(mail_error("FROM:<a@b> ENVID=\xc3\xb6"), "5.5.4 Invalid parameter: ENVID");
}

TEST(ProtocolSmtpHelo, Validity) {
  struct Case {
    std::string_view helo;
    bool valid;
  };
  const Case cases[] = {
      {"mail.example.com", true},
      {"mail.example.com.", true},  // one trailing dot, as Postfix
      {"localhost", true},
      {"my_host.example", true},  // underscores: Postfix's valid_hostname tolerates them
      {"a-b.example", true},
      {"123abc.example", true},
      {"1.2.3.4", true},  // bare IP: valid_hostaddr, Postfix's back compat
      {"2001:db8::1", true},
      {"[192.0.2.1]", true},
      {"[IPv6:2001:db8::1]", true},
      {"", false},
      {"mail..example.com", false},
      {"mail.example.com..", false},
      {".example.com", false},
      {"-mail.example.com", false},
      {"mail-.example.com", false},
      {"mail.example-", false},
      {"mail example.com", false},
      {"mail@example.com", false},
      {"1.2.3", false},  // all numeric, not an address
      {"[192.0.2.256]", false},
      {"[2001:db8::1]", false},
      {"[IPv6:192.0.2.1]", false},
      {"[]", false},
      {"[192.0.2.1", false},
      {"b\xc3\xbc"
       "cher.example",
       false},
      {std::string_view("a\0b.example", 11), false},
  };
  for (const auto& c : cases) EXPECT_EQ(is_valid_helo(c.helo), c.valid) << c.helo;
  std::string long_label(64, 'a');
  EXPECT_FALSE(is_valid_helo(long_label + ".example"));
  EXPECT_TRUE(is_valid_helo(long_label.substr(1) + ".example"));
  std::string long_name;
  for (int i = 0; i < 26; ++i) long_name += "abcdefghi.";
  long_name += "example";  // 267 bytes
  EXPECT_FALSE(is_valid_helo(long_name));
}

TEST(ProtocolSmtpHelo, Fqdn) {
  EXPECT_TRUE(is_fqdn("mail.example.com"));
  EXPECT_TRUE(is_fqdn("mail.example.com."));
  EXPECT_TRUE(is_fqdn("[192.0.2.1]"));
  EXPECT_TRUE(is_fqdn("[IPv6:2001:db8::1]"));
  EXPECT_FALSE(is_fqdn("localhost"));
  EXPECT_FALSE(is_fqdn("localhost."));
  EXPECT_FALSE(is_fqdn("1.2.3.4"));  // not a valid hostname, no brackets
  EXPECT_FALSE(is_fqdn("bad..name"));
  EXPECT_FALSE(is_fqdn(""));
}

TEST(ProtocolSmtpPath, FqdnAddress) {
  EXPECT_TRUE(is_fqdn_address(mail_ok("FROM:<>").path));
  EXPECT_TRUE(is_fqdn_address(mail_ok("FROM:<a@example.org>").path));
  EXPECT_TRUE(is_fqdn_address(mail_ok("FROM:<a@example.org.>").path));
  EXPECT_TRUE(is_fqdn_address(rcpt_ok("TO:<a@[192.0.2.1]>").path));
  EXPECT_TRUE(is_fqdn_address(mail_ok("FROM:<a@b\xc3\xbc"
                                      "cher.example> SMTPUTF8")
                                  .path));
  EXPECT_FALSE(is_fqdn_address(mail_ok("FROM:<a@localhost>").path));
  EXPECT_FALSE(is_fqdn_address(rcpt_ok("TO:<postmaster>").path));
  EXPECT_FALSE(is_fqdn_address(rcpt_ok("TO:<a@my_host>").path));
  EXPECT_FALSE(is_fqdn_address(rcpt_ok("TO:<a@-x.example>").path));
  EXPECT_FALSE(is_fqdn_address(rcpt_ok("TO:<a@1.2.3.4>").path));
}

TEST(ProtocolSmtpNonSmtp, Detection) {
  const std::vector<std::string> forbidden = {"CONNECT", "GET", "POST", "USER", "PASS"};
  const char* non_smtp[] = {
      "GET / HTTP/1.1",
      "get /index.html HTTP/1.0",
      "POST /cgi-bin/x HTTP/1.1",
      "POST",
      "CONNECT mail.example.com:443 HTTP/1.1",
      "Host: mail.example.com",
      "User-Agent: curl/8.0",
      "Content-Type:text/html",
      "X-Forwarded-For: 192.0.2.1",
      "USER bob",
      "pass secret",
  };
  for (const char* line : non_smtp) EXPECT_TRUE(is_non_smtp_command(line, forbidden)) << line;
  const char* smtp[] = {
      "MAIL FROM:<a@b>",
      "MAIL FROM: <a@b>",
      "RCPT TO:<a@b>",
      "EHLO x",
      "HELO mail.example.com",
      "QUIT",
      "NOOP",
      "",
      "DATA:",
      "AUTH PLAIN dXNlcg==",
      ": x",
      " Host: x",
      "GETX /",
      "rset",
      "ETRN example.org",
  };
  for (const char* line : smtp) EXPECT_FALSE(is_non_smtp_command(line, forbidden)) << line;
  EXPECT_FALSE(is_non_smtp_command("USER bob", {"CONNECT", "GET", "POST"}));
  EXPECT_TRUE(is_non_smtp_command("Host: x", {}));
}

}  // namespace
}  // namespace mxscreen::protocol
