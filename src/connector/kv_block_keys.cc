#include "connector/kv_block_keys.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/core.h>

namespace ferry::connector {
namespace {

std::string Sanitize(const std::string& s) {
  std::string out = s.empty() ? std::string("model") : s;
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return out.substr(0, 128);
}

}  // namespace

KvBlockKeys::KvBlockKeys(const std::string& model, const engine::KvCacheLayout& layout)
    : block_size_(layout.block_size) {
  // The element type is part of the layout: today every KV cache is float32.
  prefix_ = fmt::format("ferry-kv/v1/{}/L{}.H{}.D{}.B{}.f32/", Sanitize(model), layout.num_layers,
                        layout.num_kv_heads, layout.head_dim, layout.block_size);
}

std::vector<std::string> KvBlockKeys::For(std::span<const int32_t> tokens,
                                          size_t num_blocks) const {
  std::vector<std::string> keys;
  if (block_size_ <= 0) return keys;
  const size_t bs = static_cast<size_t>(block_size_);
  num_blocks = std::min(num_blocks, tokens.size() / bs);
  keys.reserve(num_blocks);
  XXH128_hash_t h = XXH3_128bits(prefix_.data(), prefix_.size());
  std::vector<unsigned char> buf(sizeof(h) + bs * sizeof(int32_t));
  for (size_t b = 0; b < num_blocks; ++b) {
    std::memcpy(buf.data(), &h, sizeof(h));
    std::memcpy(buf.data() + sizeof(h), tokens.data() + b * bs, bs * sizeof(int32_t));
    h = XXH3_128bits(buf.data(), buf.size());
    keys.push_back(prefix_ + fmt::format("{:016x}{:016x}", h.high64, h.low64));
  }
  return keys;
}

}  // namespace ferry::connector
