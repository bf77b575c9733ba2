// tests/checks/spf_record_test.cc: RFC 7208's record language (checks/spf_record.h) on its own:
// selecting the record, parsing terms (every syntax error is a permerror with a reason),
// macro syntax and expansion, and the names a lookup is made of.
#include "checks/spf_record.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

using spf::MechanismKind;
using spf::Qualifier;

// The parse error of `text`, "" when it parses.
std::string parse_error(std::string_view text) {
  auto parsed = spf::parse_record(text);
  EXPECT_EQ(parsed.record.has_value(), parsed.error.empty()) << text;
  return parsed.error;
}

TEST(ChecksSpfRecord, IsSpfRecordIsCaseInsensitiveAndNeedsSpaceOrEnd) {
  EXPECT_TRUE(spf::is_spf_record("v=spf1"));
  EXPECT_TRUE(spf::is_spf_record("v=spf1 -all"));
  EXPECT_TRUE(spf::is_spf_record("V=SPF1 -all"));
  EXPECT_TRUE(spf::is_spf_record("v=Spf1  ip4:192.0.2.0/24"));
  EXPECT_FALSE(spf::is_spf_record("v=spf10 -all"));
  EXPECT_FALSE(spf::is_spf_record("v=spf1\t-all"));  // 4.5: only SP separates terms
  EXPECT_FALSE(spf::is_spf_record(" v=spf1 -all"));
  EXPECT_FALSE(spf::is_spf_record("v=spf"));
  EXPECT_FALSE(spf::is_spf_record("google-site-verification=abc"));
  EXPECT_FALSE(spf::is_spf_record(""));
  EXPECT_EQ(parse_error("spf2.0/pra -all"), "not an SPF record");
}

TEST(ChecksSpfRecord, ParsesMechanismsQualifiersAndModifiers) {
  auto parsed = spf::parse_record(
      "v=spf1  ip4:192.0.2.77/24 -IP6:2001:DB8::/32 ~a/24//64 ?mx:mail.example.org "
      "include:_spf.example.org exists:%{i}.bl.example.org ptr +all redirect=_spf.example.net "
      "exp=explain.%{d} ");
  ASSERT_TRUE(parsed.record) << parsed.error;
  const auto& r = *parsed.record;
  ASSERT_EQ(r.mechanisms.size(), 8u);
  EXPECT_EQ(r.mechanisms[0].kind, MechanismKind::kIp4);
  EXPECT_EQ(r.mechanisms[0].qualifier, Qualifier::kPass);
  EXPECT_EQ(r.mechanisms[0].network.to_string(), "192.0.2.0/24");  // host bits masked
  EXPECT_EQ(r.mechanisms[0].text, "ip4:192.0.2.77/24");
  EXPECT_EQ(r.mechanisms[1].kind, MechanismKind::kIp6);
  EXPECT_EQ(r.mechanisms[1].qualifier, Qualifier::kFail);
  EXPECT_EQ(r.mechanisms[1].network.prefix, 32);
  EXPECT_EQ(r.mechanisms[2].kind, MechanismKind::kA);
  EXPECT_EQ(r.mechanisms[2].qualifier, Qualifier::kSoftFail);
  EXPECT_EQ(r.mechanisms[2].cidr4, 24);
  EXPECT_EQ(r.mechanisms[2].cidr6, 64);
  EXPECT_EQ(r.mechanisms[2].domain_spec, "");  // the current domain
  EXPECT_EQ(r.mechanisms[3].kind, MechanismKind::kMx);
  EXPECT_EQ(r.mechanisms[3].qualifier, Qualifier::kNeutral);
  EXPECT_EQ(r.mechanisms[3].domain_spec, "mail.example.org");
  EXPECT_EQ(r.mechanisms[3].cidr4, 32);
  EXPECT_EQ(r.mechanisms[3].cidr6, 128);
  EXPECT_EQ(r.mechanisms[4].kind, MechanismKind::kInclude);
  EXPECT_EQ(r.mechanisms[5].kind, MechanismKind::kExists);
  EXPECT_EQ(r.mechanisms[5].domain_spec, "%{i}.bl.example.org");
  EXPECT_EQ(r.mechanisms[6].kind, MechanismKind::kPtr);
  EXPECT_EQ(r.mechanisms[7].kind, MechanismKind::kAll);
  EXPECT_EQ(r.redirect, "_spf.example.net");
  EXPECT_EQ(r.exp, "explain.%{d}");
}

TEST(ChecksSpfRecord, OnlyDnsMechanismsCountTowardTheLookupLimit) {
  auto parsed = spf::parse_record(
      "v=spf1 include:a.example a mx ptr exists:b.example ip4:192.0.2.1 "
      "ip6:2001:db8::1 all");
  ASSERT_TRUE(parsed.record) << parsed.error;
  std::vector<bool> lookups;
  for (const auto& m : parsed.record->mechanisms) lookups.push_back(m.does_lookup());
  EXPECT_EQ(lookups, (std::vector<bool>{true, true, true, true, true, false, false, false}));
}

TEST(ChecksSpfRecord, DuplicateModifiersArePermerrors) {
  EXPECT_EQ(parse_error("v=spf1 redirect=a.example.org redirect=b.example.org"),
            "modifier given twice: \"redirect=b.example.org\"");
  EXPECT_EQ(parse_error("v=spf1 exp=a.example.org -all EXP=b.example.org"),
            "modifier given twice: \"EXP=b.example.org\"");
  EXPECT_EQ(parse_error("v=spf1 redirect=a.example.org exp=b.example.org"), "");
}

TEST(ChecksSpfRecord, UnknownMechanismsArePermerrorsUnknownModifiersAreIgnored) {
  EXPECT_EQ(parse_error("v=spf1 foo -all"), "unknown or malformed mechanism: \"foo\"");
  EXPECT_EQ(parse_error("v=spf1 -all:x"), "unknown or malformed mechanism: \"-all:x\"");
  EXPECT_EQ(parse_error("v=spf1 include -all"), "unknown or malformed mechanism: \"include\"");
  EXPECT_EQ(parse_error("v=spf1 ip4:192.0.2.1/33"),
            "unknown or malformed mechanism: \"ip4:192.0.2.1/33\"");
  EXPECT_EQ(parse_error("v=spf1 ip4:192.0.02.1"),
            "unknown or malformed mechanism: \"ip4:192.0.02.1\"");
  EXPECT_EQ(parse_error("v=spf1 ip6:192.0.2.1"),
            "unknown or malformed mechanism: \"ip6:192.0.2.1\"");
  EXPECT_EQ(parse_error("v=spf1 a/0128"), "unknown or malformed mechanism: \"a/0128\"");
  // An unknown modifier is skipped (6), but its value must still be a macro-string.
  auto parsed = spf::parse_record("v=spf1 moo.cow-far_out=man:dog/cat -all");
  ASSERT_TRUE(parsed.record) << parsed.error;
  EXPECT_EQ(parsed.record->mechanisms.size(), 1u);
  EXPECT_FALSE(parsed.record->redirect);
  EXPECT_EQ(parse_error("v=spf1 foo=%{z} -all"), "bad macro-string: \"foo=%{z}\"");
}

TEST(ChecksSpfRecord, DomainSpecsMustEndInAToplabelOrAMacro) {
  EXPECT_EQ(parse_error("v=spf1 redirect=example"), "bad domain-spec: \"redirect=example\"");
  EXPECT_EQ(parse_error("v=spf1 include:example.123 -all"),
            "unknown or malformed mechanism: \"include:example.123\"");
  EXPECT_EQ(parse_error("v=spf1 redirect=%{d}"), "");
  EXPECT_EQ(parse_error("v=spf1 redirect=example.org."), "");
  EXPECT_TRUE(spf::valid_domain_spec("_spf.example.org"));
  EXPECT_TRUE(spf::valid_domain_spec("%{ir}.%{v}._spf.%{d2}"));
  EXPECT_TRUE(spf::valid_domain_spec("a.x-1"));
  EXPECT_FALSE(spf::valid_domain_spec(""));
  EXPECT_FALSE(spf::valid_domain_spec("example.-org"));
  EXPECT_FALSE(spf::valid_domain_spec("%{d}.123"));
  EXPECT_FALSE(spf::valid_domain_spec("a.b c.org"));
}

TEST(ChecksSpfRecord, NonAsciiIsAPermerror) {
  EXPECT_EQ(parse_error("v=spf1 include:\xc3\xa9.example.org -all"),
            "non-ASCII character in the record");
}

TEST(ChecksSpfRecord, MacroStringSyntax) {
  EXPECT_TRUE(spf::valid_macro_string("%{s}%{l}%{o}%{d}%{i}%{p}%{h}%{v}", false));
  EXPECT_TRUE(spf::valid_macro_string("%{D2R-.}%%%_%-", false));
  EXPECT_TRUE(spf::valid_macro_string("", false));
  EXPECT_FALSE(spf::valid_macro_string("%{z}", true));    // no such letter
  EXPECT_FALSE(spf::valid_macro_string("%{d0}", false));  // 7.3: nonzero
  EXPECT_FALSE(spf::valid_macro_string("%{d1234}", false));
  EXPECT_FALSE(spf::valid_macro_string("%{d", false));    // unterminated
  EXPECT_FALSE(spf::valid_macro_string("%{d!}", false));  // not a delimiter
  EXPECT_FALSE(spf::valid_macro_string("50%", false));    // lone %
  EXPECT_FALSE(spf::valid_macro_string("%x", false));
  // c, r and t, and spaces, only in the explanation string.
  for (const char* exp_only : {"%{c}", "%{r}", "%{t}", "see here"}) {
    EXPECT_FALSE(spf::valid_macro_string(exp_only, false)) << exp_only;
    EXPECT_TRUE(spf::valid_macro_string(exp_only, true)) << exp_only;
  }
}

TEST(ChecksSpfRecord, UsesPtrMacro) {
  EXPECT_TRUE(spf::uses_ptr_macro("%{p}.example.org"));
  EXPECT_TRUE(spf::uses_ptr_macro("x.%{P2}"));
  EXPECT_FALSE(spf::uses_ptr_macro("%{d}.example.org"));
  EXPECT_FALSE(spf::uses_ptr_macro("p.example.org"));
}

TEST(ChecksSpfRecord, UpperCaseMacrosAndEscapesExpand) {
  spf::MacroFacts f;
  f.sender = "strong-bad@email.example.com";
  f.local_part = "strong-bad";
  f.sender_domain = "email.example.com";
  f.domain = "email.example.com";
  f.ip = *protocol::IpAddress::parse("192.0.2.3");
  f.receiver = "mx.example.net";
  f.now = 1700000000;
  // RFC 7208 7.4: upper case URL-escapes.
  EXPECT_EQ(*spf::expand_macros("%{S}", f, false), "strong-bad%40email.example.com");
  EXPECT_EQ(*spf::expand_macros("a%%b%_c%-d", f, false), "a%b c%20d");
  EXPECT_EQ(*spf::expand_macros("%{p}", f, false), "unknown");  // no validated name
  f.validated_ptr = "mail.example.com";
  EXPECT_EQ(*spf::expand_macros("%{p}", f, false), "mail.example.com");
  EXPECT_EQ(*spf::expand_macros("%{c} %{r} %{t}", f, true), "192.0.2.3 mx.example.net 1700000000");
}

TEST(ChecksSpfRecord, MacroExpansion) {
  spf::MacroFacts f;
  f.sender = "strong-bad@email.example.com";
  f.local_part = "strong-bad";
  f.sender_domain = "email.example.com";
  f.domain = "email.example.com";
  f.ip = *protocol::IpAddress::parse("192.0.2.3");
  // RFC 7208 7.4's examples.
  EXPECT_EQ(*spf::expand_macros("%{s}", f, false), "strong-bad@email.example.com");
  EXPECT_EQ(*spf::expand_macros("%{d4}", f, false), "email.example.com");
  EXPECT_EQ(*spf::expand_macros("%{d2}", f, false), "example.com");
  EXPECT_EQ(*spf::expand_macros("%{dr}", f, false), "com.example.email");
  EXPECT_EQ(*spf::expand_macros("%{d2r}", f, false), "example.email");
  EXPECT_EQ(*spf::expand_macros("%{l-}", f, false), "strong.bad");
  EXPECT_EQ(*spf::expand_macros("%{lr-}", f, false), "bad.strong");
  EXPECT_EQ(*spf::expand_macros("%{l1r-}", f, false), "strong");
  EXPECT_EQ(*spf::expand_macros("%{ir}.%{v}._spf.%{d2}", f, false),
            "3.2.0.192.in-addr._spf.example.com");
  f.ip = *protocol::IpAddress::parse("2001:db8::cb01");
  EXPECT_EQ(*spf::expand_macros("%{ir}.%{v}._spf.%{d2}", f, false),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
  EXPECT_FALSE(spf::expand_macros("%{d0}", f, false));
  EXPECT_FALSE(spf::expand_macros("%{c}", f, false));  // exp only
  EXPECT_TRUE(spf::expand_macros("%{c}", f, true));
}

TEST(ChecksSpfRecord, LookupNameTruncatesAndRejects) {
  EXPECT_EQ(*spf::lookup_name("Example.ORG."), "example.org");
  EXPECT_FALSE(spf::lookup_name("a..example.org"));
  EXPECT_FALSE(spf::lookup_name(std::string(64, 'a') + ".example.org"));
  std::string long_name;
  for (int i = 0; i < 30; ++i) long_name += "abcdefghi.";
  long_name += "org";
  auto truncated = spf::lookup_name(long_name);
  ASSERT_TRUE(truncated);
  EXPECT_LE(truncated->size(), 253u);
  EXPECT_EQ(truncated->substr(truncated->size() - 4), ".org");
}

TEST(ChecksSpfRecord, InitialDomain) {
  EXPECT_EQ(spf::initial_domain("Example.ORG."), "example.org");
  EXPECT_EQ(spf::initial_domain("localhost"), std::nullopt);  // 4.3: one label
  EXPECT_EQ(spf::initial_domain("[192.0.2.1]"), std::nullopt);
  EXPECT_EQ(spf::initial_domain("a..example.org"), std::nullopt);
  EXPECT_EQ(spf::initial_domain(""), std::nullopt);
  EXPECT_EQ(spf::initial_domain(std::string(64, 'a') + ".example.org"), std::nullopt);
}

}  // namespace
}  // namespace mxscreen::checks
