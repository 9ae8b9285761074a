#include "engine/kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ferry::engine {

Result<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheLayout& layout) {
  if (layout.num_layers <= 0 || layout.num_kv_heads <= 0 || layout.head_dim <= 0 ||
      layout.block_size <= 0 || layout.num_blocks <= 0) {
    return InvalidArgumentError(
        "KV cache layout needs positive num_layers, num_kv_heads, head_dim, block_size and "
        "num_blocks");
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t mapped = (layout.total_bytes() + page - 1) / page * page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    return ResourceExhaustedError("mmap of " + std::to_string(mapped) +
                                  " bytes for the KV cache failed (errno " + std::to_string(err) +
                                  "); lower --num-kv-blocks");
  }
  return std::unique_ptr<KvCache>(new KvCache(layout, p, mapped));
}

KvCache::~KvCache() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
}

}  // namespace ferry::engine
