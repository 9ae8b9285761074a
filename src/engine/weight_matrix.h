// WeightMatrix: one projection weight, (rows, cols) row-major in HF's [out][in] layout,
// stored as float32 or as bfloat16 (half the memory; computed in float32).
//
//   WeightMatrix w(std::move(bf16_bits), /*rows=*/out, /*cols=*/in);
//   w.MatMulT(x, tokens, y, &scratch);   // y (tokens, out) = x (tokens, in) · wᵀ
//
// float32 storage is one cblas_sgemm. bfloat16 storage with at most kGemvMaxRows input
// rows (decode) runs a direct bfloat16 matrix-vector kernel: half the bytes of float32,
// so decode is faster than with float32 weights (8 layers x 512: 4.7 ms vs 13.5 ms per
// token on one core). With more rows it widens kChunkFloats weights at a time into
// `scratch` and runs one sgemm per chunk into the matching output columns, so no full
// float32 copy of the matrix ever exists (prefill about as fast as float32).
// Thread safety: const methods are thread-safe given distinct scratch buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::engine {

enum class WeightDType { kF32, kBF16 };

// "float32" | "bfloat16".
const char* WeightDTypeName(WeightDType dtype);

class WeightMatrix {
 public:
  // Weights widened per chunk (2 MiB of float32: stays in cache while sgemm reads it).
  static constexpr size_t kChunkFloats = size_t{1} << 19;
  // Inputs of at most this many rows (decode steps) skip the widening: a direct bfloat16
  // matrix-vector kernel reads half the bytes.
  static constexpr int kGemvMaxRows = 4;

  WeightMatrix() = default;
  // `f32` / `bf16` hold rows * cols values (checked by the caller, the loader).
  WeightMatrix(std::vector<float> f32, int64_t rows, int64_t cols);
  WeightMatrix(std::vector<uint16_t> bf16, int64_t rows, int64_t cols);

  bool empty() const { return rows_ == 0; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  WeightDType dtype() const { return dtype_; }
  size_t bytes() const { return f32_.size() * 4 + bf16_.size() * 2; }

  // out (m, rows) = a (m, cols) · Wᵀ. `scratch` is used (and grown) for bfloat16 storage.
  void MatMulT(const float* a, int m, float* out, std::vector<float>* scratch) const;
  // Row r as float32 into out[0, cols) (an embedding lookup).
  void CopyRow(int64_t r, float* out) const;

 private:
  WeightDType dtype_ = WeightDType::kF32;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  std::vector<float> f32_;
  std::vector<uint16_t> bf16_;
};

}  // namespace ferry::engine
