// tests/proxy/metrics_buckets_test.cc: a histogram of another scale than latency (the greylist
// delay, minutes to days) renders its own cumulative buckets, and latency histograms keep theirs.
#include <gtest/gtest.h>

#include "proxy/greylisting.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

TEST(MetricsBuckets, AHistogramKeepsTheBucketsOfItsFirstSample) {
  Metrics m;
  m.observe("test_delay_seconds", "", 30, kGreylistDelayBuckets);
  m.observe("test_delay_seconds", "", 400, kGreylistDelayBuckets);
  m.observe("test_delay_seconds", "", 10 * 86400, kGreylistDelayBuckets);
  m.observe("test_latency_seconds", "", 0.002);
  std::string text = m.render();
  EXPECT_NE(text.find("test_delay_seconds_bucket{le=\"60\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_delay_seconds_bucket{le=\"600\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_delay_seconds_bucket{le=\"345600\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_delay_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("test_delay_seconds_count 3\n"), std::string::npos);
  EXPECT_EQ(text.find("test_delay_seconds_bucket{le=\"0.001\"}"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_EQ(m.observations("test_delay_seconds"), 3u);
}

}  // namespace
}  // namespace mxscreen::proxy
