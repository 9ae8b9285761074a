// Model: a decoder-only transformer (Qwen2 or Llama family) loaded from an HF-format
// directory, with a forward pass that reads and writes the paged KV cache.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto model, Model::Load("/models/tiny", {.threads = 2}));
//   KvCacheLayout layout = model->MakeKvLayout(/*block_size=*/16, /*num_blocks=*/256);
//   std::vector<float> kv(layout.total_bytes() / sizeof(float));
//   std::vector<int32_t> tokens = {1, 2, 3}, block_table = {0};  // 3 tokens in block 0
//   SequenceChunk chunk{tokens, /*start_pos=*/0, block_table, /*want_logits=*/true};
//   std::vector<float> logits;   // [chunks wanting logits][vocab_size]
//   FERRY_RETURN_IF_ERROR(model->Forward({&chunk, 1}, kv.data(), layout, &logits));
//
// Thread safety: Load is thread-safe; Forward must not run concurrently on the same Model
// (the scheduler calls it from one thread); it uses `threads` OpenBLAS/worker threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache_layout.h"
#include "engine/weight_matrix.h"
#include "ferry/status.h"

namespace ferry::engine {

// The subset of config.json the forward pass needs.
struct ModelConfig {
  std::string architecture;  // "Qwen2ForCausalLM" | "LlamaForCausalLM"
  std::string model_type;    // "qwen2" | "llama"
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  // rope_scaling: "" (none) or "llama3" (Llama-3.1 frequency-dependent scaling).
  std::string rope_scaling_type;
  float rope_scaling_factor = 1.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int32_t rope_original_max_position = 8192;
  bool attention_bias = false;  // Qwen2: q/k/v projections have bias
  bool tie_word_embeddings = false;
  std::vector<int32_t> eos_token_ids;  // from config / generation_config
  int32_t bos_token_id = -1;
};

// New tokens of one sequence to run through the model.
struct SequenceChunk {
  std::span<const int32_t> tokens;       // token ids, positions start_pos .. start_pos+n-1
  int32_t start_pos = 0;                 // KV for positions < start_pos is already cached
  std::span<const int32_t> block_table;  // physical blocks covering [0, start_pos + n)
  bool want_logits = true;               // return logits of the last token
  // Return logits of every token of the chunk (rows in token order; prompt scoring),
  // whatever want_logits says. Default: false.
  bool all_logits = false;
};

struct ModelLoadOptions {
  int threads = 1;  // Worker threads for matrix work. Default: 1.
  // Storage of the projection and embedding weights. kBF16 halves their memory (a 7B
  // model fits in 16 GB) at some speed; compute stays float32. Default: kF32.
  WeightDType weight_dtype = WeightDType::kF32;
};

class Model {
 public:
  virtual ~Model() = default;

  // Loads config.json, generation_config.json (optional) and *.safetensors (single or
  // sharded with model.safetensors.index.json; f32/f16/bf16 converted to
  // options.weight_dtype for matrices, to f32 for norms and biases).
  // Errors: NotFound (missing files), InvalidArgument (unsupported architecture, bad
  // shapes, malformed files) with a message naming the file and the problem.
  static Result<std::unique_ptr<Model>> Load(const std::string& dir,
                                             const ModelLoadOptions& options);

  virtual const ModelConfig& config() const = 0;

  // Layout of a KV cache for this model.
  KvCacheLayout MakeKvLayout(int32_t block_size, int32_t num_blocks) const {
    KvCacheLayout l;
    l.num_layers = config().num_layers;
    l.num_kv_heads = config().num_kv_heads;
    l.head_dim = config().head_dim;
    l.block_size = block_size;
    l.num_blocks = num_blocks;
    return l;
  }

  // Runs the chunks as one batch: writes each new token's K/V into `kv_cache` (laid out as
  // `layout`) and attends over positions [0, pos]. Appends to *logits (cleared first), chunk
  // by chunk, vocab_size floats per row: one row per token for a chunk with all_logits,
  // else one row (its last token) for a chunk with want_logits, else none.
  // Errors: InvalidArgument (token out of vocab, block table too short, position past
  // max_position_embeddings).
  virtual Status Forward(std::span<const SequenceChunk> chunks, float* kv_cache,
                         const KvCacheLayout& layout, std::vector<float>* logits) = 0;
};

}  // namespace ferry::engine
