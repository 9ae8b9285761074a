#include "engine/weight_matrix.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/safetensors.h"

namespace ferry::engine {
namespace {

// Bf16ToFloat is a shift: the loop vectorizes.
void WidenBf16(const uint16_t* in, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(in[i]);
}

// out[i * ldo + r] = a[i] · w[r] for r < rows, i < m: the decode case, read straight from
// bfloat16 (half the bytes of float32, no widened copy). 16 independent partial sums per
// dot product keep the inner loop vectorizable without reassociating float math.
[[gnu::always_inline]] inline void GemvBf16Body(const float* a, int m, const uint16_t* w,
                                                int64_t rows, int64_t cols, float* out,
                                                int64_t ldo) {
  constexpr int kLanes = 16;
  const int64_t body = cols - cols % kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* wr = w + r * cols;
    for (int i = 0; i < m; ++i) {
      const float* ai = a + static_cast<int64_t>(i) * cols;
      float acc[kLanes] = {};
      for (int64_t k = 0; k < body; k += kLanes) {
        for (int j = 0; j < kLanes; ++j) {
          acc[j] += ai[k + j] * Bf16ToFloat(wr[k + j]);
        }
      }
      float sum = 0;
      for (int j = 0; j < kLanes; ++j) sum += acc[j];
      for (int64_t k = body; k < cols; ++k) {
        sum += ai[k] * Bf16ToFloat(wr[k]);
      }
      out[static_cast<int64_t>(i) * ldo + r] = sum;
    }
  }
}

void GemvBf16Generic(const float* a, int m, const uint16_t* w, int64_t rows, int64_t cols,
                     float* out, int64_t ldo) {
  GemvBf16Body(a, m, w, rows, cols, out, ldo);
}

#if defined(__x86_64__)
// The same kernel compiled for AVX2+FMA, chosen at run time (a plain branch, not an IFUNC:
// IFUNC resolvers run before the sanitizer runtimes start and crash under TSan).
[[gnu::target("avx2,fma")]] void GemvBf16Avx2(const float* a, int m, const uint16_t* w,
                                              int64_t rows, int64_t cols, float* out, int64_t ldo) {
  GemvBf16Body(a, m, w, rows, cols, out, ldo);
}

void GemvBf16(const float* a, int m, const uint16_t* w, int64_t rows, int64_t cols, float* out,
              int64_t ldo) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  (avx2 ? GemvBf16Avx2 : GemvBf16Generic)(a, m, w, rows, cols, out, ldo);
}
#else
void GemvBf16(const float* a, int m, const uint16_t* w, int64_t rows, int64_t cols, float* out,
              int64_t ldo) {
  GemvBf16Generic(a, m, w, rows, cols, out, ldo);
}
#endif

}  // namespace

const char* WeightDTypeName(WeightDType dtype) {
  return dtype == WeightDType::kBF16 ? "bfloat16" : "float32";
}

WeightMatrix::WeightMatrix(std::vector<float> f32, int64_t rows, int64_t cols)
    : dtype_(WeightDType::kF32), rows_(rows), cols_(cols), f32_(std::move(f32)) {}

WeightMatrix::WeightMatrix(std::vector<uint16_t> bf16, int64_t rows, int64_t cols)
    : dtype_(WeightDType::kBF16), rows_(rows), cols_(cols), bf16_(std::move(bf16)) {}

void WeightMatrix::MatMulT(const float* a, int m, float* out, std::vector<float>* scratch) const {
  const int n = static_cast<int>(rows_), k = static_cast<int>(cols_);
  if (dtype_ == WeightDType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, f32_.data(), k, 0.0f,
                out, n);
    return;
  }
  if (m <= kGemvMaxRows) {
    GemvBf16(a, m, bf16_.data(), rows_, cols_, out, n);
    return;
  }
  const int64_t chunk_rows = std::max<int64_t>(1, static_cast<int64_t>(kChunkFloats) / cols_);
  scratch->resize(static_cast<size_t>(std::min(chunk_rows, rows_) * cols_));
  for (int64_t r0 = 0; r0 < rows_; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows_ - r0);
    WidenBf16(bf16_.data() + r0 * cols_, static_cast<size_t>(nr * cols_), scratch->data());
    // Columns [r0, r0 + nr) of out; its row stride stays n.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(nr), k, 1.0f, a, k,
                scratch->data(), k, 0.0f, out + r0, n);
  }
}

void WeightMatrix::CopyRow(int64_t r, float* out) const {
  if (dtype_ == WeightDType::kF32) {
    std::memcpy(out, f32_.data() + r * cols_, static_cast<size_t>(cols_) * sizeof(float));
  } else {
    WidenBf16(bf16_.data() + r * cols_, static_cast<size_t>(cols_), out);
  }
}

}  // namespace ferry::engine
