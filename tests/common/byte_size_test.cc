#include "common/byte_size.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(ByteSizeTest, AcceptsTheFormsPeopleWrite) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("16MB"), 16u << 20);
  EXPECT_EQ(*ParseByteSize("16 MB"), 16u << 20);
  EXPECT_EQ(*ParseByteSize(" 16 mib "), 16u << 20);
  EXPECT_EQ(*ParseByteSize("4GiB"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("1.5G"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("2T"), 2ull << 40);
  EXPECT_EQ(*ParseByteSize("7B"), 7u);
}

TEST(ByteSizeTest, RefusesEverythingElseNamingTheText) {
  for (const char* bad : {"", "  ", "50%", "-1", "-1M", "1X", "M", "1.2.3M", "1 M B", "0x10",
                          "99999999999999999999", "16384P", "1e3"}) {
    auto r = ParseByteSize(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << r.status().message();
  }
}

TEST(ByteSizeTest, TopOfTheRange) {
  EXPECT_EQ(*ParseByteSize("15T"), 15ull << 40);
  EXPECT_FALSE(ParseByteSize("16777216T").ok());  // 2^64
}

TEST(ByteSizeTest, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(FormatByteSize(0), "0 B");
  EXPECT_EQ(FormatByteSize(123), "123 B");
  EXPECT_EQ(FormatByteSize(64 << 10), "64 KiB");
  EXPECT_EQ(FormatByteSize(4 << 20), "4 MiB");
  EXPECT_EQ(FormatByteSize(3ull << 29), "1536 MiB");
  EXPECT_EQ(FormatByteSize(1025), "1025 B");
}

}  // namespace
}  // namespace ferry
