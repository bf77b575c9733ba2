// tests/proxy/backend_probe_test.cc: the "TLS on every path" warning judged from the backend's
// EHLO reply: with the PROXY protocol [tls] needs the backend's own STARTTLS (sessions spliced
// at connect), with XCLIENT the backend's STARTTLS is hidden and [tls] is needed instead.
#include "proxy/backend_probe.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

const std::vector<std::string> kWithTls = {"backend.example", "PIPELINING", "STARTTLS", "8BITMIME"};
const std::vector<std::string> kWithoutTls = {"backend.example", "PIPELINING", "8BITMIME"};

Config config(HandoffMode handoff, bool tls) {
  Config c;
  c.backend.address = *protocol::Endpoint::parse("127.0.0.1:10025");
  c.backend.handoff = handoff;
  if (tls) {
    c.tls.cert_file = "/etc/mxscreen/mx.crt";
    c.tls.key_file = "/etc/mxscreen/mx.key";
  }
  return c;
}

TEST(BackendStarttlsWarning, ProxyModeWithTlsNeedsTheBackendsStarttls) {
  for (auto mode : {HandoffMode::kProxyV2, HandoffMode::kProxyV1, HandoffMode::kNone}) {
    auto c = config(mode, true);
    EXPECT_EQ(backend_starttls_warning(c, kWithTls), "");
    std::string w = backend_starttls_warning(c, kWithoutTls);
    EXPECT_NE(w.find("[tls] is set but backend 127.0.0.1:10025 does not offer STARTTLS"),
              std::string::npos)
        << w;
    EXPECT_NE(w.find("PASS OLD"), std::string::npos) << w;
  }
}

TEST(BackendStarttlsWarning, ProxyModeWithoutTlsIsTheBackendsBusiness) {
  // Every path is spliced to the backend before any STARTTLS: what it offers, the client gets.
  EXPECT_EQ(backend_starttls_warning(config(HandoffMode::kProxyV2, false), kWithTls), "");
  EXPECT_EQ(backend_starttls_warning(config(HandoffMode::kProxyV2, false), kWithoutTls), "");
}

TEST(BackendStarttlsWarning, XclientModeNeedsMxscreensOwnTls) {
  std::string w = backend_starttls_warning(config(HandoffMode::kXclient, false), kWithTls);
  EXPECT_NE(w.find("backend 127.0.0.1:10025 offers STARTTLS, but with handoff = \"xclient\""),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("no client gets TLS"), std::string::npos) << w;
  // mxscreen's own STARTTLS serves every path; a backend without TLS loses nothing.
  EXPECT_EQ(backend_starttls_warning(config(HandoffMode::kXclient, true), kWithTls), "");
  EXPECT_EQ(backend_starttls_warning(config(HandoffMode::kXclient, true), kWithoutTls), "");
  EXPECT_EQ(backend_starttls_warning(config(HandoffMode::kXclient, false), kWithoutTls), "");
}

TEST(BackendStarttlsWarning, KeywordMatchIgnoresCaseAndTheGreetingLine) {
  auto c = config(HandoffMode::kProxyV2, true);
  EXPECT_EQ(backend_starttls_warning(c, {"backend.example", "starttls"}), "");
  // The first line is the greeting (a hostname), never a keyword.
  EXPECT_NE(backend_starttls_warning(c, {"STARTTLS", "PIPELINING"}), "");
}

}  // namespace
}  // namespace mxscreen::proxy
