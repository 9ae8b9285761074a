#include "bench/trace/trace_prompt_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace ferry::bench {
namespace {

TraceRequest Req(int64_t input, int64_t output, std::vector<int64_t> ids) {
  TraceRequest r;
  r.input_length = input;
  r.output_length = output;
  r.hash_ids = std::move(ids);
  return r;
}

std::vector<int> Slice(const std::vector<int>& v, size_t from, size_t n) {
  return std::vector<int>(v.begin() + from, v.begin() + from + n);
}

TEST(TracePromptBuilderTest, SharedLeadingHashIdsShareLeadingBlocks) {
  TracePromptBuilder b({.trace_block_tokens = 16, .length_scale = 1.0, .seed = 7});
  ASSERT_EQ(b.block_tokens(), 16);
  const auto p1 = b.Prompt(Req(48, 4, {1, 2, 3}), 0);
  const auto p2 = b.Prompt(Req(48, 4, {1, 2, 9}), 1);
  ASSERT_EQ(p1.size(), 48u);
  ASSERT_EQ(p2.size(), 48u);
  EXPECT_EQ(Slice(p1, 0, 32), Slice(p2, 0, 32));
  EXPECT_NE(Slice(p1, 32, 16), Slice(p2, 32, 16));
  EXPECT_EQ(Slice(p1, 0, 16), b.Block(1));
  EXPECT_NE(b.Block(1), b.Block(2));
  for (int t : p1) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 256);
  }
}

TEST(TracePromptBuilderTest, DeterministicAndSeeded) {
  TracePromptBuilder a({.trace_block_tokens = 8, .seed = 1});
  TracePromptBuilder same({.trace_block_tokens = 8, .seed = 1});
  TracePromptBuilder other({.trace_block_tokens = 8, .seed = 2});
  EXPECT_EQ(a.Block(42), same.Block(42));
  EXPECT_NE(a.Block(42), other.Block(42));
}

TEST(TracePromptBuilderTest, ScalesLengthsAndBlocks) {
  TracePromptBuilder b({.trace_block_tokens = 512, .length_scale = 0.05});
  EXPECT_EQ(b.block_tokens(), 26);  // round(25.6)
  const TraceRequest r = Req(1000, 100, {1, 2});
  EXPECT_EQ(b.PromptTokens(r), 50);
  EXPECT_EQ(b.OutputTokens(r), 5);
  EXPECT_EQ(b.Prompt(r, 0).size(), 50u);
  // Tiny lengths never go below one token, nor does the block size.
  TracePromptBuilder tiny({.trace_block_tokens = 4, .length_scale = 0.01});
  EXPECT_EQ(tiny.block_tokens(), 1);
  EXPECT_EQ(tiny.PromptTokens(Req(0, 0, {})), 1);
  EXPECT_EQ(tiny.OutputTokens(Req(0, 0, {})), 1);
}

TEST(TracePromptBuilderTest, PadsUniquelyAndCaps) {
  TracePromptBuilder b({.trace_block_tokens = 4});
  // Two blocks (8 tokens) for a 12-token prompt: 4 tokens of padding, unique per request.
  const auto p1 = b.Prompt(Req(12, 1, {5, 6}), 0);
  const auto p2 = b.Prompt(Req(12, 1, {5, 6}), 1);
  ASSERT_EQ(p1.size(), 12u);
  EXPECT_EQ(Slice(p1, 0, 8), Slice(p2, 0, 8));
  EXPECT_NE(Slice(p1, 8, 4), Slice(p2, 8, 4));
  // A partial last block is cut.
  EXPECT_EQ(b.Prompt(Req(6, 1, {5, 6}), 0), Slice(p1, 0, 6));

  TracePromptBuilder capped({.trace_block_tokens = 4, .max_prompt_tokens = 5});
  EXPECT_EQ(capped.Prompt(Req(12, 1, {5, 6}), 0), Slice(p1, 0, 5));
}

}  // namespace
}  // namespace ferry::bench
