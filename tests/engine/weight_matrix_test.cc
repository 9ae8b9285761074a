// WeightMatrix: bfloat16 storage gives the float32 product of the same (bf16-exact) values,
// across chunk boundaries, for one and many rows of input.
#include "engine/weight_matrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/safetensors.h"

namespace ferry::engine {
namespace {

struct Pair {
  WeightMatrix f32, bf16;
};

// rows x cols weights that bfloat16 represents exactly, in both storages.
Pair MakePair(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    b[i] = FloatToBf16(u(rng));
    f[i] = Bf16ToFloat(b[i]);
  }
  return {WeightMatrix(std::move(f), rows, cols), WeightMatrix(std::move(b), rows, cols)};
}

void ExpectSameProduct(const Pair& p, int m) {
  std::mt19937 rng(m);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(m * p.f32.cols()));
  for (float& x : a) x = u(rng);
  const size_t n = static_cast<size_t>(m * p.f32.rows());
  std::vector<float> want(n, NAN), got(n, NAN), scratch;
  p.f32.MatMulT(a.data(), m, want.data(), &scratch);
  p.bf16.MatMulT(a.data(), m, got.data(), &scratch);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "output " << i << " never written";
    worst = std::max(worst,
                     std::abs(double{got[i]} - want[i]) / std::max(1.0, std::abs(double{want[i]})));
  }
  // Both sides sum thousands of float products in different orders (sgemm kernels differ
  // by CPU: AVX2 vs AVX-512): a few ulps of float32 apart, not 1e-5 on every machine.
  EXPECT_LE(worst, 3e-5) << "m=" << m;
}

TEST(WeightMatrixTest, Bf16MatchesF32InOneChunk) {
  const Pair p = MakePair(96, 64, 1);
  EXPECT_EQ(p.bf16.bytes() * 2, p.f32.bytes());
  for (int m : {1, 3, 4, 5, 40}) ExpectSameProduct(p, m);  // kernel (<= 4) and sgemm
}

TEST(WeightMatrixTest, Bf16MatchesF32AcrossChunks) {
  // 3001 x 300 = 900,300 weights: two chunks of 1747 and 1254 rows.
  const int64_t rows = 3001, cols = 300;
  ASSERT_GT(static_cast<size_t>(rows * cols), WeightMatrix::kChunkFloats);
  const Pair p = MakePair(rows, cols, 2);
  for (int m : {1, 7}) ExpectSameProduct(p, m);  // kernel, then chunked sgemm
}

TEST(WeightMatrixTest, RowsWiderThanAChunkStillWork) {
  const int64_t cols = static_cast<int64_t>(WeightMatrix::kChunkFloats) + 5;
  const Pair p = MakePair(3, cols, 3);
  ExpectSameProduct(p, 2);
  ExpectSameProduct(p, 5);
}

TEST(WeightMatrixTest, CopyRowWidensExactly) {
  const Pair p = MakePair(10, 33, 4);
  std::vector<float> a(33), b(33);
  for (int64_t r : {0, 4, 9}) {
    p.f32.CopyRow(r, a.data());
    p.bf16.CopyRow(r, b.data());
    EXPECT_EQ(a, b) << "row " << r;
  }
}

}  // namespace
}  // namespace ferry::engine
