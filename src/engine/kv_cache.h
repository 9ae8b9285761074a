// KvCache: the one contiguous memory region that holds every paged KV block.
//
// Example:
//   // Model::MakeKvLayout(block_size, num_blocks) gives a model's layout.
//   KvCacheLayout layout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 64,
//                        .block_size = 16, .num_blocks = 1024};
//   FERRY_ASSIGN_OR_RETURN(auto cache, KvCache::Create(layout));
//   float* kv = cache->data();  // Model::Forward(chunks, kv, cache->layout(), &logits)
//   void* block7 = cache->BlockAddress(7);  // layout.block_bytes() bytes
//   // A KV connector registers the region with its transfer engine:
//   //   engine->RegisterMemory(ferry::MemoryRegion{cache->base(), cache->size_bytes()});
//
// Layout: see engine/kv_cache_layout.h (block-major, float32):
//   float kv[num_blocks][num_layers][2][block_size][num_kv_heads][head_dim];
// Block b starts at base() + b * layout().block_bytes().
//
// The region is page-aligned, zero-filled (anonymous mmap), never moves and lives as long
// as the KvCache. Thread safety: the accessors are thread-safe; the bytes themselves are
// written only by the engine thread (Model::Forward) and, later, by the connector for
// blocks the engine has handed to it.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/kv_cache_layout.h"
#include "ferry/status.h"

namespace ferry::engine {

class KvCache {
 public:
  // Maps layout.total_bytes() (rounded up to the page size) of anonymous memory.
  // Errors: InvalidArgument (empty or inconsistent layout), ResourceExhausted (mmap failed).
  static Result<std::unique_ptr<KvCache>> Create(const KvCacheLayout& layout);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheLayout& layout() const { return layout_; }
  float* data() const { return static_cast<float*>(base_); }
  void* base() const { return base_; }
  // Bytes covered by blocks: layout().total_bytes() (the mapping may be slightly larger).
  size_t size_bytes() const { return layout_.total_bytes(); }
  // Address of block `block_id` (all layers, K and V: block_bytes() contiguous bytes).
  void* BlockAddress(int32_t block_id) const {
    return static_cast<char*>(base_) + static_cast<size_t>(block_id) * layout_.block_bytes();
  }

 private:
  KvCache(const KvCacheLayout& layout, void* base, size_t mapped)
      : layout_(layout), base_(base), mapped_bytes_(mapped) {}

  KvCacheLayout layout_;
  void* base_ = nullptr;
  size_t mapped_bytes_ = 0;
};

}  // namespace ferry::engine
