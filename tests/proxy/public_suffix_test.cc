#include "proxy/public_suffix.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

TEST(ProxyPublicSuffix, RegistrableDomain) {
  EXPECT_EQ(registrable_domain("mail-yw1-f169.google.com"), "google.com");
  EXPECT_EQ(registrable_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(registrable_domain("MAIL.Example.ORG."), "example.org");
  // Private-section suffixes (a blog host's customers are different owners).
  EXPECT_EQ(registrable_domain("x.y.blogspot.com"), "y.blogspot.com");
  // The list's default rule "*": an unlisted top-level domain is a public suffix.
  EXPECT_EQ(registrable_domain("mail.good.test"), "good.test");
  // A public suffix or a single label has no organisational domain.
  EXPECT_EQ(registrable_domain("co.uk"), "");
  EXPECT_EQ(registrable_domain("localhost"), "");
  EXPECT_EQ(registrable_domain(""), "");
  EXPECT_EQ(registrable_domain("."), "");
}

}  // namespace
}  // namespace mxscreen::proxy
