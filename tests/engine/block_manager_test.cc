#include "engine/block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace ferry::engine {
namespace {

std::vector<int32_t> Tokens(int n, int offset = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), offset);
  return t;
}

std::unique_ptr<BlockManager> Make(int blocks, int block_size = 4, bool prefix = true) {
  auto bm = BlockManager::Create(
      {.num_blocks = blocks, .block_size = block_size, .enable_prefix_caching = prefix});
  EXPECT_TRUE(bm.ok());
  return std::move(bm).value();
}

TEST(BlockManagerTest, RejectsBadOptions) {
  EXPECT_FALSE(BlockManager::Create({.num_blocks = 0}).ok());
  EXPECT_FALSE(BlockManager::Create({.num_blocks = 4, .block_size = 0}).ok());
}

TEST(BlockManagerTest, AllocatesGrowsAndFrees) {
  auto bm = Make(8);
  auto t = Tokens(6);
  ASSERT_EQ(*bm->AllocateSequence(1, t, 6), 0);
  EXPECT_EQ(bm->BlockTable(1)->size(), 2u);
  EXPECT_EQ(bm->num_used_blocks(), 2);
  ASSERT_TRUE(bm->Reserve(1, 9).ok());
  EXPECT_EQ(bm->BlockTable(1)->size(), 3u);
  EXPECT_FALSE(bm->AllocateSequence(1, t, 6).ok());  // already exists
  bm->FreeSequence(1);
  EXPECT_EQ(bm->num_used_blocks(), 0);
  EXPECT_EQ(bm->BlockTable(1), nullptr);
}

TEST(BlockManagerTest, OutOfBlocksChangesNothing) {
  auto bm = Make(3);
  ASSERT_TRUE(bm->AllocateSequence(1, Tokens(8), 8).ok());
  EXPECT_EQ(bm->AllocateSequence(2, Tokens(8, 100), 8).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(bm->BlockTable(2), nullptr);
  EXPECT_EQ(bm->Reserve(1, 16).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(bm->BlockTable(1)->size(), 2u);
  EXPECT_EQ(bm->num_free_blocks(), 1);
}

TEST(BlockManagerTest, PrefixCacheHitSharesBlocksAndRecomputesLastToken) {
  auto bm = Make(16);
  auto t = Tokens(10);  // blocks [0..3] [4..7] partial [8,9]
  ASSERT_EQ(*bm->AllocateSequence(1, t, 10), 0);
  bm->CommitComputed(1, t, 10);
  // Same 10 tokens: two full blocks are cached.
  EXPECT_EQ(bm->CachedPrefixTokens(t), 8);
  ASSERT_EQ(*bm->AllocateSequence(2, t, 10), 8);
  EXPECT_EQ((*bm->BlockTable(2))[0], (*bm->BlockTable(1))[0]);
  EXPECT_EQ((*bm->BlockTable(2))[1], (*bm->BlockTable(1))[1]);
  EXPECT_NE((*bm->BlockTable(2))[2], (*bm->BlockTable(1))[2]);
  EXPECT_EQ(bm->num_used_blocks(), 4);
  // Exactly 8 tokens: the last token must be recomputed, so only one block is a hit.
  EXPECT_EQ(bm->CachedPrefixTokens(Tokens(8)), 4);
  // A different first block breaks the chain even if the second block matches.
  auto other = t;
  other[0] = 99;
  EXPECT_EQ(bm->CachedPrefixTokens(other), 0);
}

TEST(BlockManagerTest, FreedCachedBlocksAreReusedUntilEvicted) {
  auto bm = Make(4);
  auto t = Tokens(9);
  ASSERT_TRUE(bm->AllocateSequence(1, t, 9).ok());
  bm->CommitComputed(1, t, 9);
  bm->FreeSequence(1);
  EXPECT_EQ(bm->num_used_blocks(), 0);
  EXPECT_EQ(bm->CachedPrefixTokens(t), 8);
  // One unrelated block is taken from the uncached blocks first: the cache survives.
  ASSERT_TRUE(bm->AllocateSequence(2, Tokens(2, 50), 2).ok());
  EXPECT_EQ(bm->CachedPrefixTokens(t), 8);
  // Needing every block evicts the cached ones.
  bm->FreeSequence(2);
  ASSERT_TRUE(bm->AllocateSequence(3, Tokens(16, 200), 16).ok());
  EXPECT_EQ(bm->CachedPrefixTokens(t), 0);
}

TEST(BlockManagerTest, CachedFreeBlocksDoNotCountTwice) {
  auto bm = Make(3);
  auto t = Tokens(9);
  ASSERT_TRUE(bm->AllocateSequence(1, t, 9).ok());
  bm->CommitComputed(1, t, 9);
  bm->FreeSequence(1);
  // 3 free blocks, 2 of them are the hit: 9 tokens + room for 4 more need 4 blocks.
  EXPECT_EQ(bm->AllocateSequence(2, t, 13).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(*bm->AllocateSequence(2, t, 12), 8);
}

TEST(BlockManagerTest, DetachKeepsBlocksUntilReleased) {
  auto bm = Make(4);
  ASSERT_TRUE(bm->AllocateSequence(1, Tokens(8), 8).ok());
  std::vector<BlockId> kept = bm->DetachSequence(1);
  EXPECT_EQ(kept.size(), 2u);
  EXPECT_EQ(bm->num_used_blocks(), 2);
  bm->ReleaseBlocks(kept);
  EXPECT_EQ(bm->num_used_blocks(), 0);
}

TEST(BlockManagerTest, PrefixCachingOffNeverHits) {
  auto bm = Make(8, 4, /*prefix=*/false);
  auto t = Tokens(9);
  ASSERT_TRUE(bm->AllocateSequence(1, t, 9).ok());
  bm->CommitComputed(1, t, 9);
  EXPECT_EQ(bm->CachedPrefixTokens(t), 0);
}

TEST(BlockManagerTest, HashDependsOnParent) {
  auto t = Tokens(4);
  EXPECT_NE(HashBlockTokens(0, t), HashBlockTokens(1, t));
  EXPECT_EQ(HashBlockTokens(7, t), HashBlockTokens(7, t));
}

}  // namespace
}  // namespace ferry::engine
