// Transformer: the CPU implementation of Model (engine/model.h) for Qwen2 / Llama.
//
// Projection weights are row-major in HF's [out_features][in_features] layout, stored as
// float32 or bfloat16 (WeightMatrix; ModelLoadOptions::weight_dtype), so every projection
// is a cblas_sgemm over all tokens of the step: y (T, out) = x (T, in) · Wᵀ. Norms, biases
// and all activations are float32.
// Forward runs, for each layer: RMSNorm → q/k/v (+bias) → RoPE (HF rotate_half) → K/V
// written to the paged cache → causal GQA attention over the cache → o_proj → residual →
// RMSNorm → SwiGLU MLP → residual; then the final norm and lm_head on the rows that want
// logits. Model::Load (transformer.cc) builds one from a checkpoint directory.
//
// Thread safety: Forward is not reentrant (it reuses scratch buffers); see model.h.
#pragma once

#include <memory>
#include <vector>

#include "engine/model.h"
#include "engine/weight_matrix.h"

namespace ferry::engine {

// One decoder layer. Q = num_heads * head_dim, KV = num_kv_heads * head_dim,
// H = hidden_size, I = intermediate_size.
struct LayerWeights {
  std::vector<float> input_norm;  // (H)
  WeightMatrix wq;                // (Q, H)
  std::vector<float> bq;          // (Q), empty without attention bias
  WeightMatrix wk;                // (KV, H)
  std::vector<float> bk;          // (KV) or empty
  WeightMatrix wv;                // (KV, H)
  std::vector<float> bv;          // (KV) or empty
  WeightMatrix wo;                // (H, Q)
  std::vector<float> post_norm;   // (H)
  WeightMatrix w_gate;            // (I, H)
  WeightMatrix w_up;              // (I, H)
  WeightMatrix w_down;            // (H, I)
};

struct TransformerWeights {
  WeightMatrix embed;  // (vocab, H)
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // (H)
  WeightMatrix lm_head;           // (vocab, H); empty when tied to `embed`
};

class Transformer final : public Model {
 public:
  // Takes the weights (shapes already checked by the loader). `threads` >= 1.
  static Result<std::unique_ptr<Transformer>> Create(ModelConfig config, TransformerWeights weights,
                                                     int threads);

  const ModelConfig& config() const override { return config_; }
  Status Forward(std::span<const SequenceChunk> chunks, float* kv_cache,
                 const KvCacheLayout& layout, std::vector<float>* logits) override;

 private:
  Transformer(ModelConfig config, TransformerWeights weights, int threads);

  Status Validate(std::span<const SequenceChunk> chunks, const float* kv_cache,
                  const KvCacheLayout& layout, const std::vector<float>* logits) const;
  // Causal attention of one chunk (its tokens are rows tok0.. of q_) for layer `layer`,
  // reading K/V of positions [0, start_pos + n) from the cache; writes att_ rows.
  void Attend(const SequenceChunk& chunk, int tok0, int layer, const float* kv_cache,
              const KvCacheLayout& layout);

  ModelConfig config_;
  TransformerWeights w_;
  int threads_;
  std::vector<double> inv_freq_;  // (head_dim / 2) RoPE inverse frequencies

  // Scratch, resized per step; T = tokens in the step, ctx = longest context.
  std::vector<float> x_;         // (T, H) residual stream
  std::vector<float> xb_;        // (T, H) normed input / projection output
  std::vector<float> q_;         // (T, Q)
  std::vector<float> k_;         // (T, KV)
  std::vector<float> v_;         // (T, KV)
  std::vector<float> att_;       // (T, Q) attention output, heads concatenated
  std::vector<float> gate_;      // (T, I)
  std::vector<float> up_;        // (T, I)
  std::vector<float> cos_;       // (T, head_dim / 2)
  std::vector<float> sin_;       // (T, head_dim / 2)
  std::vector<float> kbuf_;      // (ctx, head_dim) K of one kv head, gathered from blocks
  std::vector<float> vbuf_;      // (ctx, head_dim)
  std::vector<float> scores_;    // (n, ctx) attention probabilities of one head
  std::vector<float> wscratch_;  // bfloat16 weights widened for one sgemm (WeightMatrix)
};

}  // namespace ferry::engine
