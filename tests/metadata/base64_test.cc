#include "metadata/internal/base64.h"

#include <gtest/gtest.h>

namespace ferry::metadata::internal {
namespace {

TEST(Base64Test, MatchesRfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [raw, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(raw), encoded);
    auto decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, raw);
  }
}

TEST(Base64Test, RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len = 0; len <= all.size(); len += 37) {
    std::string part = all.substr(0, len) + all.substr(256 - len % 3);
    auto decoded = Base64Decode(Base64Encode(part));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, part);
  }
}

TEST(Base64Test, AcceptsUnpaddedInput) {
  EXPECT_EQ(Base64Decode("Zm8").value_or("?"), "fo");
  EXPECT_EQ(Base64Decode("Zg").value_or("?"), "f");
}

TEST(Base64Test, RejectsGarbage) {
  for (std::string bad : {"Z", "Zm9v!", "Zm=v", "Zg===", "====", "Zm9v\n"}) {
    EXPECT_EQ(Base64Decode(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ferry::metadata::internal
