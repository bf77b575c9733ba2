#include "checks/greylist_gate.h"

#include <gtest/gtest.h>

#include "checks/rdns.h"

namespace mxscreen::checks {
namespace {

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

constexpr GateFacts kAll = bit(GateFact::kNoFcrdns) | bit(GateFact::kDynamicPtr) |
                           bit(GateFact::kDnsbl) | bit(GateFact::kHelo) | bit(GateFact::kSpf);

ClientFacts clean() {
  ClientFacts f;
  f.client = ip("192.0.2.7");
  f.fcrdns = true;
  f.ptr_name = "mail.example.org";
  f.dnsbl_rank = 0;
  f.helo = "mail.example.org";
  f.helo_exists = NameFact::kExists;
  f.spf = "pass";
  return f;
}

TEST(ChecksGreylistGate, CleanClientIsNotGreylisted) {
  auto d = greylist_gate(clean(), kAll);
  EXPECT_FALSE(d.greylist);
  EXPECT_EQ(d.suspicious, "");
  EXPECT_EQ(d.facts, "ptr=mail.example.org fcrdns=yes dnsbl=0 helo=ok spf=pass");
}

TEST(ChecksGreylistGate, OffGreylistsEveryone) { EXPECT_TRUE(greylist_gate(clean(), 0).greylist); }

TEST(ChecksGreylistGate, EachSuspiciousFact) {
  auto f = clean();
  f.fcrdns = false;
  f.ptr_name.clear();
  auto d = greylist_gate(f, kAll);
  EXPECT_TRUE(d.greylist);
  EXPECT_EQ(d.suspicious, "no_fcrdns");
  EXPECT_EQ(d.facts, "ptr=none fcrdns=no dnsbl=0 helo=ok spf=pass");

  f = clean();
  f.ptr_name = "192-0-2-7.pool.example.net";
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "dynamic_ptr");

  f = clean();
  f.dnsbl_rank = 1;
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "dnsbl");
  f.dnsbl_rank = -5;  // a DNSWL listing
  EXPECT_FALSE(greylist_gate(f, kAll).greylist);

  f = clean();
  f.helo = "[192.0.2.7]";
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "helo");
  f.helo = "nowhere.example";
  f.helo_exists = NameFact::kNone;
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "helo");
  f.helo_exists.reset();  // never looked up: unknown counts as suspicious
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "helo");

  for (const char* result : {"fail", "softfail", "none", "temperror", "permerror", ""}) {
    f = clean();
    f.spf = result;
    EXPECT_EQ(greylist_gate(f, kAll).suspicious, "spf") << result;
  }
  f.spf = "neutral";
  EXPECT_FALSE(greylist_gate(f, kAll).greylist);
}

TEST(ChecksGreylistGate, OnlyTheListedFactsCount) {
  auto f = clean();
  f.fcrdns = false;
  f.dnsbl_rank = 3;
  f.spf = "";
  auto d = greylist_gate(f, bit(GateFact::kDnsbl));
  EXPECT_TRUE(d.greylist);
  EXPECT_EQ(d.suspicious, "dnsbl");
  EXPECT_FALSE(greylist_gate(f, bit(GateFact::kHelo)).greylist);
  EXPECT_EQ(greylist_gate(f, kAll).suspicious, "no_fcrdns,dnsbl,spf");
}

TEST(ChecksGreylistGate, ParseFactNames) {
  EXPECT_EQ(parse_gate_fact("no_fcrdns"), GateFact::kNoFcrdns);
  EXPECT_EQ(parse_gate_fact("spf"), GateFact::kSpf);
  EXPECT_FALSE(parse_gate_fact("SPF"));
  EXPECT_FALSE(parse_gate_fact("ptr"));
}

TEST(ChecksRdnsDynamic, IpDigitsAndPoolWords) {
  auto client = ip("81.2.69.142");
  for (const char* name :
       {"81-2-69-142.example.net", "host142-69-2-81.example.net", "81.2.69.142.in.example.net",
        "c-81-2-69-142.hsd1.example.com", "p510245_8E.example.de" /* no */, "dynamic.example.net",
        "dsl-pool.example.net", "x.dhcp.example.net", "ppp.example.net",
        "p5102458e.dip0.t-ipconnect.de"}) {
    bool expected = std::string_view(name) != "p510245_8E.example.de";
    EXPECT_EQ(reverse_name_looks_dynamic(name, client), expected) << name;
  }
  // The hex form of the address.
  EXPECT_TRUE(reverse_name_looks_dynamic("p5102458E.example.de", client));
  for (const char* name :
       {"mail.example.org", "mx1.example.net", "smtp-out-142.example.com", "o1.ptr2625.example.com",
        "mail-yw1-f169.google.com", "mail.dynamics-consulting.example"}) {
    EXPECT_FALSE(reverse_name_looks_dynamic(name, client)) << name;
  }
  EXPECT_FALSE(reverse_name_looks_dynamic("mail.example.org", ip("2001:db8::1")));
  EXPECT_TRUE(reverse_name_looks_dynamic("pool-1.example.org", ip("2001:db8::1")));
}

}  // namespace
}  // namespace mxscreen::checks
