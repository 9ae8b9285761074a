#include "common/json_limits.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(JsonLimitsTest, ParsesOrdinaryDocuments) {
  auto j = ParseJson(R"({"a":[1,{"b":"[[[{{{"}],"c":"\"]"})");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)["a"][1]["b"], "[[[{{{");
}

TEST(JsonLimitsTest, DeepNestingIsRefusedWithoutCrashing) {
  // 100,000 levels: overflowed the stack of `ferry serve` and `ferry proxy` before.
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  auto j = ParseJson(deep);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("nested deeper"), std::string::npos);
  // Brackets inside strings do not count.
  std::string in_string = "\"" + std::string(1000, '[') + "\"";
  EXPECT_TRUE(ParseJson(in_string).ok());
}

TEST(JsonLimitsTest, DepthLimitIsExact) {
  auto nest = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(ParseJson(nest(64)).ok());
  EXPECT_FALSE(ParseJson(nest(65)).ok());
  EXPECT_TRUE(ParseJson(nest(3), {.max_depth = 3}).ok());
  EXPECT_FALSE(ParseJson(nest(4), {.max_depth = 3}).ok());
}

TEST(JsonLimitsTest, SizeLimitAndBrokenJson) {
  EXPECT_FALSE(ParseJson(std::string(100, ' ') + "1", {.max_bytes = 50}).ok());
  EXPECT_FALSE(ParseJson("{\"a\":").ok());
  EXPECT_FALSE(ParseJson("").ok());
  EXPECT_FALSE(ParseJson("\"unterminated \\\"").ok());
}

}  // namespace
}  // namespace ferry
