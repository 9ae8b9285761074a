#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <map>

namespace ferry::engine {
namespace {

SamplingParams Params(float temperature, float top_p = 1.0f, int32_t top_k = 0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  return p;
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  SamplingParams p = Params(0.0f);
  auto rng = MakeSamplerRng(1);
  EXPECT_EQ(SampleToken(l, p, {}, &rng), 1);
  std::vector<int32_t> banned = {1};
  EXPECT_EQ(SampleToken(l, p, banned, &rng), 2);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  std::vector<float> l = {0.0f, 1.0f, 5.0f, 4.9f};
  SamplingParams p = Params(1.0f, 1.0f, 1);
  auto rng = MakeSamplerRng(3);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(SampleToken(l, p, {}, &rng), 2);
}

TEST(SamplerTest, TopPKeepsOnlyTheNucleus) {
  // Probabilities ~ 0.6, 0.3, 0.1 at temperature 1 (log space).
  std::vector<float> l = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams p = Params(1.0f, 0.8f);
  auto rng = MakeSamplerRng(5);
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[SampleToken(l, p, {}, &rng)];
  EXPECT_EQ(seen.count(2), 0u);
  EXPECT_GT(seen[0], seen[1]);
  EXPECT_GT(seen[1], 300);
}

TEST(SamplerTest, TemperatureSamplesFollowDistribution) {
  std::vector<float> l = {std::log(0.75f), std::log(0.25f)};
  SamplingParams p = Params(1.0f);
  auto rng = MakeSamplerRng(11);
  int zeros = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) zeros += SampleToken(l, p, {}, &rng) == 0;
  EXPECT_NEAR(static_cast<double>(zeros) / n, 0.75, 0.03);
}

TEST(SamplerTest, SameSeedSameSequence) {
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>(i % 7);
  SamplingParams p = Params(0.9f, 0.95f, 20);
  auto a = MakeSamplerRng(42), b = MakeSamplerRng(42), c = MakeSamplerRng(43);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(SampleToken(l, p, {}, &a));
    sb.push_back(SampleToken(l, p, {}, &b));
    sc.push_back(SampleToken(l, p, {}, &c));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(SamplerTest, BannedIdsAreNeverSampled) {
  std::vector<float> l = {10.0f, 0.0f, 0.0f};
  SamplingParams p = Params(2.0f);
  std::vector<int32_t> banned = {0};
  auto rng = MakeSamplerRng(9);
  for (int i = 0; i < 200; ++i) EXPECT_NE(SampleToken(l, p, banned, &rng), 0);
}

}  // namespace
}  // namespace ferry::engine
