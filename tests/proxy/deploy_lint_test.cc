// tests/proxy/deploy_lint_test.cc: --check-config's reading of Postfix's restrictions (the pure
// parts of deploy_lint.h) and the cases where it must say nothing or say it could not check.
#include "proxy/deploy_lint.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

protocol::Endpoint at(const char* text) { return *protocol::Endpoint::parse(text); }

TEST(DeployLint, PolicyRestrictionFound) {
  auto listen = at("127.0.0.1:10140");
  EXPECT_EQ(policy_restriction_warning(
                "reject_unauth_destination, check_policy_service inet:127.0.0.1:10140", listen,
                "main.cf"),
            "");
  // master.cf's -o form: commas, no spaces; and a { } group with options.
  EXPECT_EQ(policy_restriction_warning(
                "reject_unauth_destination,reject_unlisted_recipient,check_policy_service,inet:"
                "127.0.0.1:10140",
                listen, "x"),
            "");
  EXPECT_EQ(policy_restriction_warning("check_policy_service { inet:127.0.0.1:10140, timeout=10s }",
                                       listen, "x"),
            "");
  // A wildcard listener is asked on any address with its port.
  EXPECT_EQ(policy_restriction_warning("check_policy_service inet:127.0.0.1:10140",
                                       at("0.0.0.0:10140"), "x"),
            "");
}

TEST(DeployLint, PolicyRestrictionMissingOrElsewhere) {
  auto listen = at("127.0.0.1:10140");
  auto w = policy_restriction_warning("reject_unauth_destination", listen, "main.cf");
  EXPECT_EQ(w.rfind("main.cf has no check_policy_service inet:127.0.0.1:10140: ", 0), 0u) << w;
  EXPECT_NE(policy_restriction_warning("check_policy_service inet:127.0.0.1:10023", listen, "x"),
            "");
  EXPECT_NE(policy_restriction_warning("", listen, "x"), "");
}

TEST(DeployLint, ServiceOverrideOfTheBackendsService) {
  const char* p =
      "127.0.0.1:10135/inet/smtpd_upstream_proxy_protocol = haproxy\n"
      "127.0.0.1:10137/inet/smtpd_recipient_restrictions = check_policy_service,inet:127.0.0."
      "1:10140\n"
      "10025/inet/smtpd_recipient_restrictions = reject_unauth_destination\n"
      "submission/inet/smtpd_recipient_restrictions = permit_sasl_authenticated,reject\n";
  EXPECT_EQ(service_override(p, at("127.0.0.1:10137"), "smtpd_recipient_restrictions"),
            "check_policy_service,inet:127.0.0.1:10140");
  EXPECT_EQ(service_override(p, at("127.0.0.1:10135"), "smtpd_recipient_restrictions"),
            std::nullopt);
  EXPECT_EQ(service_override(p, at("127.0.0.1:10025"), "smtpd_recipient_restrictions"),
            "reject_unauth_destination");
  EXPECT_EQ(service_override("", at("127.0.0.1:10025"), "smtpd_recipient_restrictions"),
            std::nullopt);
}

TEST(DeployLint, PostconfCheckOnlyWhenItApplies) {
  Config c;
  c.backend.address = at("127.0.0.1:10025");
  EXPECT_TRUE(postfix_policy_warnings(c, "", "/nonexistent/postconf").empty());  // policy off
  c.policy.listen = at("127.0.0.1:10140");
  auto w = postfix_policy_warnings(c, "", "/nonexistent/postconf");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("postconf not found: ", 0), 0u) << w[0];
  c.backend.address = at("192.0.2.25:25");  // Postfix on another host: not ours to read
  EXPECT_TRUE(postfix_policy_warnings(c, "", "/nonexistent/postconf").empty());
}

}  // namespace
}  // namespace mxscreen::proxy
