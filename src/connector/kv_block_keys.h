// Names of KV blocks in the pool: one object per full KV block (all layers, K and V), named
// from the model, the KV layout and a 128-bit chained hash of the tokens up to and
// including the block's.
//
// Example:
//   engine::KvCacheLayout layout{.num_layers = 24, .num_kv_heads = 2, .head_dim = 64};
//   std::vector<int32_t> prompt_tokens(48, 7);
//   KvBlockKeys keys("Qwen2-0.5B", layout);
//   std::vector<std::string> names = keys.For(prompt_tokens, /*num_blocks=*/3);
//   // "ferry-kv/v1/Qwen2-0.5B/L24.H2.D64.B16.f32/<32 hex digits>" for each of 3 blocks
//
// Chain: h(-1) = XXH3_128(namespace text), h(i) = XXH3_128(h(i-1) bytes, block i's tokens).
// A block's key therefore names its whole prefix: equal keys mean equal token prefixes
// (up to a 128-bit collision, ~2^-64 for 2^32 blocks in one pool). Instances serving the
// same model with the same layout compute the same keys; a different model name, layer
// count, head shape, block size or dtype gives a different namespace, so never a key
// collision with another model's KV.
//
// Thread safety: const methods only; safe to share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache_layout.h"

namespace ferry::connector {

class KvBlockKeys {
 public:
  // `model` is the served model's name; characters outside [A-Za-z0-9._-] become '_'.
  KvBlockKeys(const std::string& model, const engine::KvCacheLayout& layout);

  // Keys of the first `num_blocks` full blocks of `tokens` (num_blocks * block_size must
  // not exceed tokens.size(); fewer keys come back if it does).
  std::vector<std::string> For(std::span<const int32_t> tokens, size_t num_blocks) const;

  // "ferry-kv/v1/<model>/<layout>/": what every key of this model and layout starts with.
  const std::string& prefix() const { return prefix_; }
  int32_t block_size() const { return block_size_; }

 private:
  std::string prefix_;
  int32_t block_size_;
};

}  // namespace ferry::connector
