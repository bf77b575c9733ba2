// `mxscreen ctl check`: the monitoring-plugin verdict from the metrics and the backend probe.
#include "proxy/ctl_check.h"

#include <gtest/gtest.h>

namespace mxscreen::proxy {
namespace {

constexpr std::string_view kCalm =
    "# TYPE mxscreen_sessions_active gauge\n"
    "mxscreen_sessions_active 12\n"
    "mxscreen_sessions_backend 3\n"
    "mxscreen_backend_queue_depth 0\n"
    "mxscreen_stress_mode 0\n"
    "mxscreen_store_errors_total{engine=\"redis\",reason=\"timeout\"} 2\n"
    "mxscreen_store_errors_total{engine=\"redis\",reason=\"io\"} 1\n"
    "mxscreen_dnsbl_zone_healthy{zone=\"zen.spamhaus.org\"} 1\n";

CheckResult check(std::string_view metrics, std::optional<std::string> backend_error = {}) {
  return evaluate_check({metrics, std::move(backend_error), 100, 40}, CheckThresholds{});
}

TEST(CtlCheck, CalmIsOkWithPerfdata) {
  auto r = check(kCalm);
  EXPECT_EQ(r.status, CheckStatus::kOk);
  EXPECT_EQ(r.line,
            "MXSCREEN OK - 12 sessions, 3 at the backend, 0 queued | sessions=12;80;95;0;100 "
            "backend_sessions=3 queue=0;10;30;0;40 stress=0 store_errors=3c "
            "dnsbl_zones_unhealthy=0");
}

TEST(CtlCheck, BackendDownIsCritical) {
  auto r = check(kCalm, "backend 127.0.0.1:10025 unreachable: Connection refused");
  EXPECT_EQ(r.status, CheckStatus::kCritical);
  EXPECT_EQ(r.line.rfind("MXSCREEN CRITICAL - backend 127.0.0.1:10025 unreachable", 0), 0u);
}

TEST(CtlCheck, SessionsAndQueueAgainstTheirLimits) {
  std::string busy(kCalm);
  busy.replace(busy.find("active 12"), 9, "active 81");
  EXPECT_EQ(check(busy).status, CheckStatus::kWarning);
  busy.replace(busy.find("active 81"), 9, "active 96");
  EXPECT_EQ(check(busy).status, CheckStatus::kCritical);
  std::string queued(kCalm);
  queued.replace(queued.find("depth 0"), 7, "depth 10");
  auto r = check(queued);
  EXPECT_EQ(r.status, CheckStatus::kWarning);
  EXPECT_NE(r.line.find("10 waiting for the backend >= 10"), std::string::npos);
}

TEST(CtlCheck, StressModeAndUnhealthyZonesWarn) {
  std::string text(kCalm);
  text += "mxscreen_dnsbl_zone_healthy{zone=\"key.zen.dq.spamhaus.net\"} 0\n";
  auto r = check(text);
  EXPECT_EQ(r.status, CheckStatus::kWarning);
  EXPECT_NE(r.line.find("DNSBL zone key.zen.dq.spamhaus.net answers with error codes"),
            std::string::npos);
  text.replace(text.find("stress_mode 0"), 13, "stress_mode 1");
  EXPECT_NE(check(text).line.find("stress mode, DNSBL zone"), std::string::npos);
}

TEST(CtlCheck, NotMxscreenMetricsIsUnknown) {
  EXPECT_EQ(check("up 1\n").status, CheckStatus::kUnknown);
  // A longer name that starts with the one looked for is another metric.
  EXPECT_EQ(check("mxscreen_sessions_active_total 5\n").status, CheckStatus::kUnknown);
}

TEST(CtlCheck, Arguments) {
  CheckThresholds t;
  std::string error;
  EXPECT_TRUE(parse_check_args({"--warn-sessions", "0.5", "--crit-queue", "1"}, &t, &error));
  EXPECT_DOUBLE_EQ(t.warn_sessions, 0.5);
  EXPECT_DOUBLE_EQ(t.crit_queue, 1.0);
  EXPECT_FALSE(parse_check_args({"--warn-sessions", "80%"}, &t, &error));
  EXPECT_EQ(error, "--warn-sessions takes a share from 0 to 1, not '80%'");
  EXPECT_FALSE(parse_check_args({"--verbose"}, &t, &error));
  EXPECT_FALSE(parse_check_args({"--crit-sessions"}, &t, &error));
}

}  // namespace
}  // namespace mxscreen::proxy
