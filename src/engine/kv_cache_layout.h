// The KV layout contract: how the paged KV cache is laid out in memory.
//
// The connector moves KV blocks by address (`region_base + block_id * block_bytes`), so
// both sides of a transfer must compute addresses from this one description, which also
// travels in the side-channel message. docs/kv_layout.md says the same in prose.
//
// One contiguous region holds every block of every layer, block-major:
//
//   float kv[num_blocks][num_layers][2][block_size][num_kv_heads][head_dim];
//           ^ block id  ^ layer     ^ 0 = K, 1 = V
//
// so one block (all layers, K and V) is one contiguous run of block_bytes() bytes, and a
// run of consecutive block ids is one contiguous range: the connector moves it with a
// single transfer request. Token t of a sequence lives in block table[t / block_size], slot
// t % block_size. Values are float32 (K after RoPE).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::engine {

struct KvCacheLayout {
  int32_t num_layers = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 16;  // tokens per block
  int32_t num_blocks = 0;

  // Floats of one (layer, K or V) slab inside a block: [block_size][num_kv_heads][head_dim].
  size_t slab_floats() const { return static_cast<size_t>(block_size) * num_kv_heads * head_dim; }
  // Floats of one block: all layers, K and V.
  size_t block_floats() const { return slab_floats() * 2 * num_layers; }
  size_t block_bytes() const { return block_floats() * sizeof(float); }
  size_t total_bytes() const { return block_bytes() * num_blocks; }

  // Float offset of (block, layer, kv, slot, head) from the region base; kv: 0 = K, 1 = V.
  size_t Offset(int32_t block, int32_t layer, int32_t kv, int32_t slot, int32_t head) const {
    return ((static_cast<size_t>(block) * num_layers + layer) * 2 + kv) * slab_floats() +
           (static_cast<size_t>(slot) * num_kv_heads + head) * head_dim;
  }
};

}  // namespace ferry::engine
