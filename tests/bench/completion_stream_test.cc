#include "bench/trace/completion_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::bench {
namespace {

constexpr char kStream[] =
    "data: {\"choices\":[{\"text\":\"He\",\"index\":0}]}\n\n"
    "data: {\"choices\":[{\"text\":\"\",\"index\":0}]}\n\n"  // held-back bytes: no token
    "data: {\"choices\":[{\"text\":\"llo\",\"index\":0}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n"
    "data: [DONE]\n\n";

TEST(CompletionStreamTest, CountsTokenEventsUsageAndDone) {
  CompletionStream s;
  int calls = 0;
  EXPECT_TRUE(s.Feed(kStream, [&] { ++calls; }));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(s.token_events(), 2);
  EXPECT_EQ(s.completion_tokens(), 3);
  EXPECT_TRUE(s.done());
  EXPECT_TRUE(s.error().empty());
}

TEST(CompletionStreamTest, EventsSplitAnywhere) {
  const std::string all = kStream;
  for (size_t step : {1u, 2u, 7u, 50u}) {
    CompletionStream s;
    int calls = 0;
    for (size_t i = 0; i < all.size(); i += step) {
      ASSERT_TRUE(s.Feed(std::string_view(all).substr(i, step), [&] { ++calls; }));
    }
    EXPECT_EQ(calls, 2) << step;
    EXPECT_TRUE(s.done()) << step;
  }
}

TEST(CompletionStreamTest, ErrorEventStopsTheStream) {
  CompletionStream s;
  EXPECT_FALSE(s.Feed("data: {\"error\":{\"message\":\"out of blocks\"}}\n\n", [] {}));
  EXPECT_EQ(s.error(), "out of blocks");
  EXPECT_FALSE(s.done());
  EXPECT_FALSE(s.Feed("data: [DONE]\n\n", [] {}));
}

TEST(CompletionStreamTest, OversizedEventIsRefused) {
  CompletionStream s(64);
  EXPECT_FALSE(s.Feed("data: " + std::string(100, 'x'), [] {}));
  EXPECT_NE(s.error().find("larger than 64"), std::string::npos);
}

TEST(CompletionStreamTest, NoDoneWhenTruncated) {
  CompletionStream s;
  EXPECT_TRUE(s.Feed("data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DO", [] {}));
  EXPECT_EQ(s.token_events(), 1);
  EXPECT_FALSE(s.done());
  EXPECT_EQ(s.completion_tokens(), -1);
}

}  // namespace
}  // namespace ferry::bench
