#include "connector/block_runs.h"

#include <gtest/gtest.h>

namespace ferry::connector {
namespace {

TEST(BlockRunsTest, MergesRunsConsecutiveOnBothSides) {
  auto runs = PairBlockRuns({4, 5, 6, 9, 10}, {0, 1, 2, 3, 7});
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].src_block, 4);
  EXPECT_EQ((*runs)[0].dst_block, 0);
  EXPECT_EQ((*runs)[0].count, 3);
  EXPECT_EQ((*runs)[1].src_block, 9);  // consecutive on P (9, 10) but not on D (3, 7)
  EXPECT_EQ((*runs)[1].count, 1);
  EXPECT_EQ((*runs)[2].dst_block, 7);
}

TEST(BlockRunsTest, DecodePrefixHitTakesPrefillsLastBlocks) {
  auto runs = PairBlockRuns({10, 11, 12, 13}, {20, 21});
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].src_block, 12);
  EXPECT_EQ((*runs)[0].dst_block, 20);
  EXPECT_EQ((*runs)[0].count, 2);
}

TEST(BlockRunsTest, DecodeAskingForMoreIsAnError) {
  auto runs = PairBlockRuns({1}, {1, 2});
  ASSERT_FALSE(runs.ok());
  EXPECT_NE(runs.status().message().find("P num blocks less than D"), std::string::npos);
  EXPECT_TRUE(PairBlockRuns({1, 2}, {})->empty());
}

}  // namespace
}  // namespace ferry::connector
