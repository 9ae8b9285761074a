// MakeModel: writes a deterministic tiny Qwen2 checkpoint in exactly the HF layout, so
// tests and demos go through the same loading path as a real model:
//
//   DIR/config.json               Qwen2ForCausalLM
//   DIR/generation_config.json    eos ids [<|im_end|>, <|endoftext|>]
//   DIR/model.safetensors         or model-0000k-of-0000n.safetensors + index when shards > 1
//   DIR/tokenizer.json            byte-level BPE trained on a built-in corpus (make_tokenizer.h)
//   DIR/tokenizer_config.json     ChatML chat_template, eos "<|im_end|>"
//
//   FERRY_RETURN_IF_ERROR(MakeModel("/tmp/tiny", {.seed = 1}));
//
// Same options => byte-identical files. Weights are uniform random from a splitmix64
// stream seeded by `seed`, scaled ~1/sqrt(fan_in) so activations stay O(1).
#pragma once

#include <cstdint>
#include <string>

#include "engine/safetensors.h"
#include "ferry/status.h"

namespace ferry::engine {

struct MakeModelOptions {
  uint64_t seed = 0;            // Default: 0.
  int32_t layers = 2;           // Default: 2.
  int32_t hidden = 64;          // Default: 64.
  int32_t heads = 4;            // Default: 4 (head_dim = hidden / heads).
  int32_t kv_heads = 2;         // Default: 2 (GQA).
  int32_t intermediate = 128;   // Default: 128.
  int32_t vocab = 512;          // Target vocabulary (tokenizer may stop short). Default: 512.
  int32_t max_position = 2048;  // Default: 2048.
  float rope_theta = 10000.0f;  // Default: 10000.
  DType dtype = DType::kBF16;   // Default: BF16 (as Qwen2.5 checkpoints).
  int32_t shards = 1;           // > 1 writes shards + model.safetensors.index.json.
  bool tie_embeddings = true;   // Default: true (as Qwen2.5-0.5B).
  bool pair_merges = false;     // Merges as ["a","b"] pairs. Default: false ("a b").
};

// Creates `dir` if needed and writes the files above. Errors: InvalidArgument for
// inconsistent sizes (hidden % heads, heads % kv_heads, odd head_dim), errno-mapped
// statuses for I/O.
Status MakeModel(const std::string& dir, const MakeModelOptions& options);

}  // namespace ferry::engine
