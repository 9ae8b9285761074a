#include "engine/block_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <string>

namespace ferry::engine {

uint64_t HashBlockTokens(uint64_t parent_hash, std::span<const int32_t> tokens) {
  // The parent's hash seeds the hash of this block's tokens: a chain hash.
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), parent_hash);
}

Result<std::unique_ptr<BlockManager>> BlockManager::Create(const BlockManagerOptions& options) {
  if (options.num_blocks <= 0 || options.block_size <= 0) {
    return InvalidArgumentError("block manager needs num_blocks > 0 and block_size > 0");
  }
  return std::unique_ptr<BlockManager>(new BlockManager(options));
}

BlockManager::BlockManager(const BlockManagerOptions& options)
    : block_size_(options.block_size),
      prefix_caching_(options.enable_prefix_caching),
      blocks_(options.num_blocks) {
  for (BlockId b = 0; b < options.num_blocks; ++b) {
    blocks_[b].free_pos = free_list_.insert(free_list_.end(), b);
  }
}

int32_t BlockManager::MatchPrefix(std::span<const int32_t> tokens, std::vector<BlockId>* out,
                                  uint64_t* last_hash) const {
  if (!prefix_caching_ || tokens.empty()) return 0;
  const size_t max_blocks = (tokens.size() - 1) / block_size_;
  uint64_t h = 0;
  size_t n = 0;
  for (; n < max_blocks; ++n) {
    auto block_tokens = tokens.subspan(n * block_size_, block_size_);
    const uint64_t next = HashBlockTokens(h, block_tokens);
    auto it = cached_.find(next);
    if (it == cached_.end()) break;
    const Block& blk = blocks_[it->second];
    if (!std::equal(block_tokens.begin(), block_tokens.end(), blk.tokens.begin(),
                    blk.tokens.end())) {
      break;
    }
    if (out != nullptr) out->push_back(it->second);
    h = next;
  }
  if (last_hash != nullptr) *last_hash = h;
  return static_cast<int32_t>(n * block_size_);
}

int32_t BlockManager::CachedPrefixTokens(std::span<const int32_t> prompt) const {
  return MatchPrefix(prompt, nullptr, nullptr);
}

BlockId BlockManager::PopFree() {
  BlockId b = free_list_.front();
  free_list_.pop_front();
  Block& blk = blocks_[b];
  if (blk.hashed) {  // evict from the prefix cache
    cached_.erase(blk.hash);
    blk.hashed = false;
    blk.tokens.clear();
  }
  blk.ref_count = 1;
  return b;
}

void BlockManager::AddRef(BlockId b) {
  Block& blk = blocks_[b];
  if (blk.ref_count++ == 0) free_list_.erase(blk.free_pos);
}

void BlockManager::DropRef(BlockId b) {
  Block& blk = blocks_[b];
  if (--blk.ref_count > 0) return;
  // Uncached blocks are reused first; cached ones go to the back (LRU).
  blk.free_pos = blk.hashed ? free_list_.insert(free_list_.end(), b)
                            : free_list_.insert(free_list_.begin(), b);
}

Result<int32_t> BlockManager::AllocateSequence(SeqId seq, std::span<const int32_t> tokens,
                                               int32_t num_tokens) {
  if (seqs_.count(seq) != 0) {
    return AlreadyExistsError("sequence " + std::to_string(seq) + " already has blocks");
  }
  SeqBlocks sb;
  const int32_t cached = MatchPrefix(tokens, &sb.table, &sb.last_hash);
  const int32_t need = BlocksFor(std::max(num_tokens, cached));
  // Cached blocks with ref 0 sit in the free list; they must not count as allocatable.
  int32_t reusable_free = 0;
  for (BlockId b : sb.table) reusable_free += blocks_[b].ref_count == 0 ? 1 : 0;
  const int32_t fresh = need - static_cast<int32_t>(sb.table.size());
  if (fresh > num_free_blocks() - reusable_free) {
    return ResourceExhaustedError("not enough free KV blocks: need " + std::to_string(fresh) +
                                  ", free " + std::to_string(num_free_blocks() - reusable_free));
  }
  for (BlockId b : sb.table) AddRef(b);
  for (int32_t i = 0; i < fresh; ++i) sb.table.push_back(PopFree());
  sb.num_hashed = cached / block_size_;
  ++prefix_queries_;
  prefix_hits_ += cached > 0 ? 1 : 0;
  seqs_.emplace(seq, std::move(sb));
  return cached;
}

Status BlockManager::Reserve(SeqId seq, int32_t num_tokens) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return NotFoundError("unknown sequence " + std::to_string(seq));
  auto& table = it->second.table;
  const int32_t need = BlocksFor(num_tokens) - static_cast<int32_t>(table.size());
  if (need <= 0) return OkStatus();
  if (need > num_free_blocks()) {
    return ResourceExhaustedError("not enough free KV blocks: need " + std::to_string(need) +
                                  ", free " + std::to_string(num_free_blocks()));
  }
  for (int32_t i = 0; i < need; ++i) table.push_back(PopFree());
  return OkStatus();
}

void BlockManager::CommitComputed(SeqId seq, std::span<const int32_t> tokens,
                                  int32_t num_computed) {
  if (!prefix_caching_) return;
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& sb = it->second;
  const int32_t full =
      std::min<int32_t>(num_computed, static_cast<int32_t>(tokens.size())) / block_size_;
  for (; sb.num_hashed < full && sb.num_hashed < static_cast<int32_t>(sb.table.size());
       ++sb.num_hashed) {
    auto block_tokens =
        tokens.subspan(static_cast<size_t>(sb.num_hashed) * block_size_, block_size_);
    const uint64_t h = HashBlockTokens(sb.last_hash, block_tokens);
    sb.last_hash = h;
    Block& blk = blocks_[sb.table[sb.num_hashed]];
    if (blk.hashed || cached_.count(h) != 0) continue;  // someone published it already
    blk.hashed = true;
    blk.hash = h;
    blk.tokens.assign(block_tokens.begin(), block_tokens.end());
    cached_.emplace(h, sb.table[sb.num_hashed]);
  }
}

void BlockManager::FreeSequence(SeqId seq) {
  std::vector<BlockId> table = DetachSequence(seq);
  ReleaseBlocks(table);
}

std::vector<BlockId> BlockManager::DetachSequence(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  std::vector<BlockId> table = std::move(it->second.table);
  seqs_.erase(it);
  return table;
}

void BlockManager::ReleaseBlocks(std::span<const BlockId> blocks) {
  // Tail first, so that a chain's head outlives its tail in the LRU order.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) DropRef(*it);
}

void BlockManager::RetainBlocks(std::span<const BlockId> blocks) {
  for (BlockId b : blocks) AddRef(b);
}

const std::vector<BlockId>* BlockManager::BlockTable(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second.table;
}

}  // namespace ferry::engine
