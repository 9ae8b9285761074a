#include "ferry/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace ferry {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  FERRY_ASSIGN_OR_RETURN(int h, Half(x));
  FERRY_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  FERRY_RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(StatusTest, OkHasNoMessage) {
  Status s(StatusCode::kOk, "ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeMessageAndContext) {
  Status s = NotFoundError("segment x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: segment x");
  EXPECT_EQ(s.WithContext("open").message(), "open: segment x");
  EXPECT_TRUE(OkStatus().WithContext("ctx").ok());
}

TEST(StatusTest, FieldIsDataBesideTheMessage) {
  Status s = InvalidArgumentError("max_tokens: must be at least 0").WithField("max_tokens");
  EXPECT_EQ(s.field(), "max_tokens");
  EXPECT_EQ(s.message(), "max_tokens: must be at least 0");  // the message is unchanged
  // Context and detail codes keep it; the field takes part in equality.
  Status c = s.WithContext("request").WithDetailCode(-600);
  EXPECT_EQ(c.field(), "max_tokens");
  EXPECT_EQ(c.detail_code(), -600);
  EXPECT_FALSE(s == InvalidArgumentError("max_tokens: must be at least 0"));
  // A message that merely looks like "field: ..." names no field, and OK never has one.
  EXPECT_EQ(InvalidArgumentError("prompt: too long").field(), "");
  EXPECT_EQ(OkStatus().WithField("x").field(), "");
}

TEST(StatusTest, ResultPropagatesThroughMacros) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "odd: 3");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(StatusTest, ErrnoMapsToCanonicalCodes) {
  EXPECT_EQ(ErrnoToStatus(ECONNREFUSED, "connect").code(), StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(ETIMEDOUT, "recv").code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrnoToStatus(EACCES, "open").code(), StatusCode::kPermissionDenied);
  EXPECT_NE(ErrnoToStatus(ENOENT, "open").message().find("open: "), std::string::npos);
}

}  // namespace
}  // namespace ferry
