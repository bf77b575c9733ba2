#include "checks/greylist_identity.h"

#include <gtest/gtest.h>

namespace mxscreen::checks {
namespace {

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

TEST(ChecksGreylistIdentity, SpfPassDomainComesFirst) {
  IdentityFacts f{"Example.ORG.", "mail-7.example.net", "example.net"};
  auto id = choose_identity(f, ip("192.0.2.7"), true);
  EXPECT_EQ(id.kind, IdentityKind::kSpf);
  EXPECT_EQ(id.domain, "example.org");
}

TEST(ChecksGreylistIdentity, VerifiedNameOrganisationWithoutSpf) {
  IdentityFacts f{"", "mail-7.outbound.example.net", "example.net"};
  auto id = choose_identity(f, ip("192.0.2.7"), true);
  EXPECT_EQ(id.kind, IdentityKind::kPtr);
  EXPECT_EQ(id.domain, "example.net");
}

TEST(ChecksGreylistIdentity, NetworkWithoutVerifiedNameOrWhenOff) {
  EXPECT_EQ(choose_identity({}, ip("192.0.2.7"), true).kind, IdentityKind::kNet);
  // A verified name that is itself a public suffix has no organisational domain.
  EXPECT_EQ(choose_identity({"", "co.uk", ""}, ip("192.0.2.7"), true).kind, IdentityKind::kNet);
  IdentityFacts f{"example.org", "mail.example.net", "example.net"};
  EXPECT_EQ(choose_identity(f, ip("192.0.2.7"), false).kind, IdentityKind::kNet);
}

TEST(ChecksGreylistIdentity, DynamicPoolNameKeepsTheNetwork) {
  // An ISP's pool of home users is not one sender: its org domain would group them all.
  IdentityFacts f{"", "192-0-2-7.dsl.example.net", "example.net"};
  EXPECT_EQ(choose_identity(f, ip("192.0.2.7"), true).kind, IdentityKind::kNet);
}

TEST(ChecksGreylistIdentity, KeysPerKind) {
  GreylistPolicy p;
  auto client = ip("192.0.2.7");
  GreylistIdentity net;
  EXPECT_EQ(greylist_key(net, client, "a@b.example", "c@d.example", p),
            greylist_key(client, "a@b.example", "c@d.example", p));
  EXPECT_EQ(greylist_key(net, client, "a@b.example", "c@d.example", p),
            "gl:192.0.2.0/24:a@b.example:c@d.example");
  GreylistIdentity spf{IdentityKind::kSpf, "example.org"};
  EXPECT_EQ(greylist_key(spf, client, "A@B.example", "c@d.example", p),
            "gl:spf=example.org:a@b.example:c@d.example");
  GreylistIdentity ptr{IdentityKind::kPtr, "example.net"};
  EXPECT_EQ(greylist_key(ptr, client, "a@b.example", "c@d.example", p),
            "gl:ptr=example.net:a@b.example:c@d.example");
  // Two addresses of one organisation share the key; the network key does not.
  EXPECT_EQ(greylist_key(ptr, ip("198.51.100.9"), "a@b.example", "c@d.example", p),
            greylist_key(ptr, client, "a@b.example", "c@d.example", p));
  EXPECT_NE(greylist_key(ip("198.51.100.9"), "a@b.example", "c@d.example", p),
            greylist_key(client, "a@b.example", "c@d.example", p));
  // A name with a ':' cannot make the key ambiguous.
  GreylistIdentity odd{IdentityKind::kPtr, "a:b"};
  EXPECT_EQ(greylist_key(odd, client, "x@y", "z@w", p), "gl:ptr=a%3ab:x@y:z@w");
}

TEST(ChecksGreylistIdentity, Describe) {
  GreylistPolicy p;
  EXPECT_EQ(describe({}, ip("192.0.2.7"), p), "net:192.0.2.0/24");
  EXPECT_EQ(describe({IdentityKind::kPtr, "example.net"}, ip("192.0.2.7"), p), "ptr:example.net");
  EXPECT_EQ(to_string(IdentityKind::kSpf), "spf");
}

}  // namespace
}  // namespace mxscreen::checks
