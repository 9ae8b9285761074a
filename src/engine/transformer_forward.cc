// Transformer::Forward: one batched step over prefill and decode chunks.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/transformer.h"

namespace ferry::engine {

namespace {

// out (m, n) = a (m, k) · w (n, k)ᵀ  [+ bias (n) on every row when non-empty].
void MatMulT(const float* a, int m, const WeightMatrix& w, float* out, std::vector<float>* scratch,
             const std::vector<float>& bias = {}) {
  w.MatMulT(a, m, out, scratch);
  if (bias.empty()) return;
  const int n = static_cast<int>(w.rows());
  for (int i = 0; i < m; ++i) {
    float* row = out + static_cast<size_t>(i) * n;
    for (int j = 0; j < n; ++j) row[j] += bias[j];
  }
}

// out (m, dim) = x / rms(x) * weight, row by row (sum of squares in double).
void RmsNorm(const float* x, int m, int dim, const std::vector<float>& weight, float eps,
             float* out) {
  for (int i = 0; i < m; ++i) {
    const float* xi = x + static_cast<size_t>(i) * dim;
    float* oi = out + static_cast<size_t>(i) * dim;
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
    for (int j = 0; j < dim; ++j) oi[j] = xi[j] * inv * weight[j];
  }
}

// HF rotate_half RoPE on `heads` heads of each of `m` rows (row stride heads * head_dim):
// pairs are (i, i + head_dim / 2); cos/sin are (m, head_dim / 2).
void ApplyRope(float* x, int m, int heads, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int t = 0; t < m; ++t) {
    const float* c = cos + static_cast<size_t>(t) * half;
    const float* s = sin + static_cast<size_t>(t) * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace

Status Transformer::Validate(std::span<const SequenceChunk> chunks, const float* kv_cache,
                             const KvCacheLayout& layout, const std::vector<float>* logits) const {
  if (kv_cache == nullptr || logits == nullptr) {
    return InvalidArgumentError("Forward: kv_cache and logits must not be null");
  }
  if (layout.num_layers != config_.num_layers || layout.num_kv_heads != config_.num_kv_heads ||
      layout.head_dim != config_.head_dim || layout.block_size <= 0 || layout.num_blocks <= 0) {
    return InvalidArgumentError(
        "Forward: KV layout does not match the model (use Model::MakeKvLayout)");
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    const SequenceChunk& ch = chunks[c];
    const std::string where = "Forward: chunk " + std::to_string(c) + ": ";
    if (ch.tokens.empty()) return InvalidArgumentError(where + "has no tokens");
    if (ch.start_pos < 0) return InvalidArgumentError(where + "negative start_pos");
    const int64_t end = int64_t{ch.start_pos} + static_cast<int64_t>(ch.tokens.size());
    if (end > config_.max_position_embeddings) {
      return InvalidArgumentError(where + "position " + std::to_string(end - 1) +
                                  " is past max_position_embeddings " +
                                  std::to_string(config_.max_position_embeddings));
    }
    const int64_t blocks_needed = (end + layout.block_size - 1) / layout.block_size;
    if (static_cast<int64_t>(ch.block_table.size()) < blocks_needed) {
      return InvalidArgumentError(where + "block table has " +
                                  std::to_string(ch.block_table.size()) + " blocks, " +
                                  std::to_string(blocks_needed) + " needed");
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      if (ch.block_table[b] < 0 || ch.block_table[b] >= layout.num_blocks) {
        return InvalidArgumentError(where + "block id " + std::to_string(ch.block_table[b]) +
                                    " outside [0, " + std::to_string(layout.num_blocks) + ")");
      }
    }
    for (int32_t id : ch.tokens) {
      if (id < 0 || id >= config_.vocab_size) {
        return InvalidArgumentError(where + "token id " + std::to_string(id) +
                                    " outside the vocabulary [0, " +
                                    std::to_string(config_.vocab_size) + ")");
      }
    }
  }
  return OkStatus();
}

void Transformer::Attend(const SequenceChunk& chunk, int tok0, int layer, const float* kv_cache,
                         const KvCacheLayout& layout) {
  const int hd = config_.head_dim, n = static_cast<int>(chunk.tokens.size());
  const int ctx = chunk.start_pos + n, qdim = config_.num_heads * hd;
  const int group = config_.num_heads / config_.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  kbuf_.resize(static_cast<size_t>(ctx) * hd);
  vbuf_.resize(static_cast<size_t>(ctx) * hd);
  scores_.resize(static_cast<size_t>(n) * ctx);
  for (int g = 0; g < config_.num_kv_heads; ++g) {
    for (int p = 0; p < ctx; ++p) {  // gather K, V (ctx, hd) of kv head g
      const int32_t block = chunk.block_table[p / layout.block_size];
      const int slot = p % layout.block_size;
      std::memcpy(&kbuf_[static_cast<size_t>(p) * hd],
                  kv_cache + layout.Offset(block, layer, 0, slot, g), hd * sizeof(float));
      std::memcpy(&vbuf_[static_cast<size_t>(p) * hd],
                  kv_cache + layout.Offset(block, layer, 1, slot, g), hd * sizeof(float));
    }
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const float* qh = &q_[static_cast<size_t>(tok0) * qdim + h * hd];  // (n, hd), ld qdim
      float* out = &att_[static_cast<size_t>(tok0) * qdim + h * hd];     // (n, hd), ld qdim
      // Decode rows (n small) are cheaper as plain loops than as tiny BLAS calls.
      const bool small = n <= 2;
      if (small) {
        for (int i = 0; i < n; ++i) {
          for (int p = 0; p < ctx; ++p) {
            float dot = 0;
            const float* k = &kbuf_[static_cast<size_t>(p) * hd];
            for (int d = 0; d < hd; ++d) dot += qh[static_cast<size_t>(i) * qdim + d] * k[d];
            scores_[static_cast<size_t>(i) * ctx + p] = dot * scale;
          }
        }
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ctx, hd, scale, qh, qdim,
                    kbuf_.data(), hd, 0.0f, scores_.data(), ctx);
      }
      for (int i = 0; i < n; ++i) {  // causal softmax: row i sees positions [0, start + i]
        float* row = &scores_[static_cast<size_t>(i) * ctx];
        const int visible = chunk.start_pos + i + 1;
        const float mx = *std::max_element(row, row + visible);
        double sum = 0;
        for (int j = 0; j < visible; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int j = 0; j < visible; ++j) row[j] *= inv;
        std::fill(row + visible, row + ctx, 0.0f);
      }
      if (small) {
        for (int i = 0; i < n; ++i) {
          float* o = out + static_cast<size_t>(i) * qdim;
          std::fill(o, o + hd, 0.0f);
          for (int p = 0; p < ctx; ++p) {
            const float pr = scores_[static_cast<size_t>(i) * ctx + p];
            const float* v = &vbuf_[static_cast<size_t>(p) * hd];
            for (int d = 0; d < hd; ++d) o[d] += pr * v[d];
          }
        }
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, ctx, 1.0f, scores_.data(),
                    ctx, vbuf_.data(), hd, 0.0f, out, qdim);
      }
    }
  }
}

Status Transformer::Forward(std::span<const SequenceChunk> chunks, float* kv_cache,
                            const KvCacheLayout& layout, std::vector<float>* logits) {
  FERRY_RETURN_IF_ERROR(Validate(chunks, kv_cache, layout, logits));
  logits->clear();
  const ModelConfig& c = config_;
  const int H = c.hidden_size, hd = c.head_dim, half = hd / 2, I = c.intermediate_size;
  const int Q = c.num_heads * hd, KV = c.num_kv_heads * hd;
  int T = 0;
  for (const SequenceChunk& ch : chunks) T += static_cast<int>(ch.tokens.size());
  if (T == 0) return OkStatus();
  openblas_set_num_threads(threads_);

  x_.resize(static_cast<size_t>(T) * H);
  xb_.resize(static_cast<size_t>(T) * H);
  q_.resize(static_cast<size_t>(T) * Q);
  att_.resize(static_cast<size_t>(T) * Q);
  k_.resize(static_cast<size_t>(T) * KV);
  v_.resize(static_cast<size_t>(T) * KV);
  gate_.resize(static_cast<size_t>(T) * I);
  up_.resize(static_cast<size_t>(T) * I);
  cos_.resize(static_cast<size_t>(T) * half);
  sin_.resize(static_cast<size_t>(T) * half);

  // Embeddings and RoPE angles for every token of the step.
  int t = 0;
  for (const SequenceChunk& ch : chunks) {
    for (size_t i = 0; i < ch.tokens.size(); ++i, ++t) {
      w_.embed.CopyRow(ch.tokens[i], &x_[static_cast<size_t>(t) * H]);
      const double pos = ch.start_pos + static_cast<double>(i);
      for (int j = 0; j < half; ++j) {
        cos_[static_cast<size_t>(t) * half + j] = static_cast<float>(std::cos(pos * inv_freq_[j]));
        sin_[static_cast<size_t>(t) * half + j] = static_cast<float>(std::sin(pos * inv_freq_[j]));
      }
    }
  }

  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[l];
    RmsNorm(x_.data(), T, H, lw.input_norm, c.rms_norm_eps, xb_.data());
    MatMulT(xb_.data(), T, lw.wq, q_.data(), &wscratch_, lw.bq);
    MatMulT(xb_.data(), T, lw.wk, k_.data(), &wscratch_, lw.bk);
    MatMulT(xb_.data(), T, lw.wv, v_.data(), &wscratch_, lw.bv);
    ApplyRope(q_.data(), T, c.num_heads, hd, cos_.data(), sin_.data());
    ApplyRope(k_.data(), T, c.num_kv_heads, hd, cos_.data(), sin_.data());
    // Store the new K/V, then attend chunk by chunk.
    t = 0;
    for (const SequenceChunk& ch : chunks) {
      for (size_t i = 0; i < ch.tokens.size(); ++i, ++t) {
        const int pos = ch.start_pos + static_cast<int>(i);
        const int32_t block = ch.block_table[pos / layout.block_size];
        const int slot = pos % layout.block_size;
        // All kv heads of a slot are contiguous: (num_kv_heads, head_dim).
        std::memcpy(kv_cache + layout.Offset(block, l, 0, slot, 0),
                    &k_[static_cast<size_t>(t) * KV], KV * sizeof(float));
        std::memcpy(kv_cache + layout.Offset(block, l, 1, slot, 0),
                    &v_[static_cast<size_t>(t) * KV], KV * sizeof(float));
      }
    }
    t = 0;
    for (const SequenceChunk& ch : chunks) {
      Attend(ch, t, l, kv_cache, layout);
      t += static_cast<int>(ch.tokens.size());
    }
    MatMulT(att_.data(), T, lw.wo, xb_.data(), &wscratch_);
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += xb_[i];
    RmsNorm(x_.data(), T, H, lw.post_norm, c.rms_norm_eps, xb_.data());
    MatMulT(xb_.data(), T, lw.w_gate, gate_.data(), &wscratch_);
    MatMulT(xb_.data(), T, lw.w_up, up_.data(), &wscratch_);
    for (size_t i = 0; i < gate_.size(); ++i) {
      const float g = gate_[i];
      gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];
    }
    MatMulT(gate_.data(), T, lw.w_down, xb_.data(), &wscratch_);
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += xb_[i];
  }

  // Final norm + lm_head on the last token of each chunk that wants logits (every token of
  // an all_logits chunk).
  std::vector<float> rows;  // (L, H)
  t = 0;
  for (const SequenceChunk& ch : chunks) {
    const int n = static_cast<int>(ch.tokens.size());
    t += n;
    if (!ch.want_logits && !ch.all_logits) continue;
    const int first = ch.all_logits ? t - n : t - 1;
    rows.insert(rows.end(), x_.begin() + static_cast<ptrdiff_t>(first) * H,
                x_.begin() + static_cast<ptrdiff_t>(t) * H);
  }
  const int L = static_cast<int>(rows.size() / H);
  if (L == 0) return OkStatus();
  RmsNorm(rows.data(), L, H, w_.final_norm, c.rms_norm_eps, rows.data());
  logits->resize(static_cast<size_t>(L) * c.vocab_size);
  MatMulT(rows.data(), L, w_.lm_head.empty() ? w_.embed : w_.lm_head, logits->data(), &wscratch_);
  return OkStatus();
}

}  // namespace ferry::engine
