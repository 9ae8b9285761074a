#include "demo/kv_moved.h"

#include <gtest/gtest.h>

namespace ferry::demo {
namespace {

constexpr char kProducerMetrics[] =
    "# HELP ferry_kv_bytes_sent_total KV bytes pushed to consumers\n"
    "# TYPE ferry_kv_bytes_sent_total counter\n"
    "ferry_kv_bytes_sent_total 73728\n"
    "ferry_kv_transfers_total 2\n"
    "ferry_kv_transfer_seconds_bucket{le=\"0.001\"} 2\n"
    "ferry_kv_transfer_seconds_sum 0.0015\n"
    "ferry_kv_transfer_seconds_count 2\n";

TEST(KvMovedTest, ReadsTheProducerTotals) {
  Result<KvMoved> kv = ParseKvMoved(kProducerMetrics);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  EXPECT_EQ(kv->bytes, 73728);
  EXPECT_EQ(kv->transfers, 2);
  EXPECT_DOUBLE_EQ(kv->seconds, 0.0015);
}

TEST(KvMovedTest, MetricsWithoutTheKvTotalsAreAnError) {
  // A server without a connector (or a /metrics page of something else) has none of them.
  Result<KvMoved> kv = ParseKvMoved("ferry_requests_total 4\nferry_kv_bytes_sent_total_x 1\n");
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.status().code(), StatusCode::kNotFound);
  EXPECT_NE(kv.status().message().find("ferry_kv_bytes_sent_total"), std::string::npos);
  EXPECT_FALSE(ParseKvMoved("").ok());
}

TEST(KvMovedTest, OneMissingTotalIsNamed) {
  Result<KvMoved> kv =
      ParseKvMoved("ferry_kv_bytes_sent_total 10\nferry_kv_transfer_seconds_sum 0.1\n");
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.status().message().find("ferry_kv_transfers_total"), std::string::npos);
}

TEST(KvMovedTest, AValueThatIsNotANumberIsInvalid) {
  Result<KvMoved> kv = ParseKvMoved(
      "ferry_kv_bytes_sent_total many\nferry_kv_transfers_total 1\n"
      "ferry_kv_transfer_seconds_sum 0\n");
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::demo
