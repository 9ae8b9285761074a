#include "bench/trace/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bench/trace/prefix_hit_counters.h"

namespace ferry::bench {
namespace {

TEST(PrometheusTextTest, SumsCountersOverLabelSets) {
  const char* text =
      "# HELP ferry_prompt_tokens_total Prompt tokens of admitted requests.\n"
      "# TYPE ferry_prompt_tokens_total counter\n"
      "ferry_prompt_tokens_total 1024\n"
      "\n"
      "ferry_request_success_total{finished_reason=\"length\"} 3\n"
      "ferry_request_success_total{finished_reason=\"abort\",x=\"a}b,\\\"c\"} 1 1700000000000\n"
      "ferry_ttft_seconds_bucket{le=\"+Inf\"} 5\r\n"
      "ferry_ttft_seconds_sum 1.5e-1\n"
      "  ferry_gauge -2\n"
      "ferry_nan NaN\n";
  auto sums = ParsePrometheusText(text);
  ASSERT_TRUE(sums.ok()) << sums.status().ToString();
  EXPECT_EQ(SumOr(*sums, "ferry_prompt_tokens_total", -1), 1024);
  EXPECT_EQ(SumOr(*sums, "ferry_request_success_total", -1), 4);
  EXPECT_EQ(SumOr(*sums, "ferry_ttft_seconds_bucket", -1), 5);
  EXPECT_DOUBLE_EQ(SumOr(*sums, "ferry_ttft_seconds_sum", -1), 0.15);
  EXPECT_EQ(SumOr(*sums, "ferry_gauge", 0), -2);
  EXPECT_TRUE(std::isnan(SumOr(*sums, "ferry_nan", 0)));
  EXPECT_EQ(SumOr(*sums, "ferry_absent", -1), -1);
  // A name that is a prefix of another is a different metric.
  EXPECT_EQ(SumOr(*sums, "ferry_prompt_tokens", -1), -1);
}

TEST(PrometheusTextTest, MalformedLinesAreErrorsNamingTheLine) {
  for (const char* bad : {"ok 1\n{x=\"1\"} 2\n", "ok 1\nname{a=\"1\" 2\n", "ok 1\nname\n",
                          "ok 1\nname abc\n", "ok 1\nname{a=\"1\"}\n"}) {
    auto sums = ParsePrometheusText(bad);
    ASSERT_FALSE(sums.ok()) << bad;
    EXPECT_NE(sums.status().message().find("metrics line 2"), std::string::npos)
        << sums.status().message();
  }
}

TEST(PrefixHitCountersTest, DeltaAndRates) {
  auto before = PrefixHitCounters::FromSums(*ParsePrometheusText(
      "ferry_prompt_tokens_total 100\nferry_prefix_cache_hit_tokens_total 10\n"));
  auto after = PrefixHitCounters::FromSums(*ParsePrometheusText(
      "ferry_prompt_tokens_total 300\nferry_prefix_cache_hit_tokens_total 110\n"
      "ferry_kv_pool_hit_tokens_total 50\n"));
  ASSERT_TRUE(before.ok() && after.ok());
  const PrefixHitCounters d = *after - *before;
  EXPECT_EQ(d.prompt, 200);
  EXPECT_EQ(d.local, 100);
  EXPECT_EQ(d.pool, 50);
  EXPECT_EQ(d.computed, 50);  // derived: (300 - 110 - 50) - (100 - 10 - 0)
  EXPECT_DOUBLE_EQ(d.local_hit_rate(), 0.5);
  EXPECT_DOUBLE_EQ(d.pool_hit_rate(), 0.25);
  EXPECT_DOUBLE_EQ(d.total_hit_rate(), 0.75);

  auto explicit_computed = PrefixHitCounters::FromSums(
      *ParsePrometheusText("ferry_prompt_tokens_total 10\nferry_prompt_tokens_computed_total 7\n"));
  ASSERT_TRUE(explicit_computed.ok());
  EXPECT_EQ(explicit_computed->computed, 7);

  EXPECT_EQ(PrefixHitCounters::FromSums(*ParsePrometheusText("other 1\n")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(PrefixHitCounters{}.total_hit_rate(), 0);
}

}  // namespace
}  // namespace ferry::bench
