// BlockManager: the paged KV block pool, per-sequence block tables and the prefix cache.
//
//   FERRY_ASSIGN_OR_RETURN(auto bm, BlockManager::Create({.num_blocks = 1024,
//                                                         .block_size = 16}));
//   int32_t cached = bm->CachedPrefixTokens(prompt);        // prompt tokens already in KV
//   FERRY_RETURN_IF_ERROR(bm->AllocateSequence(seq, prompt, prompt.size()));
//   model->Forward(...bm->BlockTable(seq)...);
//   bm->CommitComputed(seq, all_tokens, num_computed);      // publish full blocks
//   bm->FreeSequence(seq);
//
// Blocks are reference counted. A block with ref count 0 is free; if it holds a full block
// of tokens that was published by CommitComputed it stays in the prefix cache (found by
// the hash of its token chain) until it is reused for something else, oldest-freed first
// (LRU). "Used" blocks are the ones with ref count > 0.
//
// Prefix hashing: hash(block i) = XXH3_64bits_withSeed(tokens of block i, hash(block i-1)),
// with
// hash(block -1) = 0; a hit also compares the tokens, so a hash collision is a miss.
// Prefix hits cover at most the first (num_prompt_tokens - 1) tokens rounded down to whole
// blocks: the last prompt token is always recomputed (its logits are needed) and a shared
// block is never written.
//
// For KV connectors (engine/kv_connector.h): DetachSequence hands a finished sequence's
// blocks (with their references) to the caller instead of freeing them; RetainBlocks takes
// extra references (blocks a save still reads); ReleaseBlocks returns them.
// AllocateSequence for more tokens than are cached pre-allocates blocks for KV that
// arrives from elsewhere.
//
// Thread safety: none; the engine thread owns the BlockManager.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "ferry/status.h"

namespace ferry::engine {

using BlockId = int32_t;
using SeqId = uint64_t;

struct BlockManagerOptions {
  int32_t num_blocks = 0;             // Physical blocks in the pool. Required (> 0).
  int32_t block_size = 16;            // Tokens per block. Default: 16.
  bool enable_prefix_caching = true;  // Default: true.
};

class BlockManager {
 public:
  // Errors: InvalidArgument for non-positive sizes.
  static Result<std::unique_ptr<BlockManager>> Create(const BlockManagerOptions& options);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Blocks with ref count 0 (including prefix-cached ones that may be evicted).
  int32_t num_free_blocks() const { return static_cast<int32_t>(free_list_.size()); }
  int32_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Blocks needed to hold `num_tokens` tokens.
  int32_t BlocksFor(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + block_size_ - 1) / block_size_);
  }

  // Number of leading tokens of `prompt` whose KV is in the prefix cache (a multiple of
  // block_size, at most prompt.size() - 1). Does not change any state.
  int32_t CachedPrefixTokens(std::span<const int32_t> prompt) const;

  // Creates the block table of a new sequence `seq` able to hold `num_tokens` tokens,
  // reusing prefix-cached blocks for the leading tokens of `tokens` (as CachedPrefixTokens).
  // Returns the number of tokens whose KV is already present. Errors: AlreadyExists (seq
  // known), ResourceExhausted (not enough free blocks; nothing is changed).
  Result<int32_t> AllocateSequence(SeqId seq, std::span<const int32_t> tokens, int32_t num_tokens);

  // Grows the block table of `seq` to hold `num_tokens` tokens. Errors: NotFound,
  // ResourceExhausted (nothing is changed).
  Status Reserve(SeqId seq, int32_t num_tokens);

  // Publishes the full blocks among the first `num_computed` of `tokens` (the sequence's
  // whole token list so far) in the prefix cache. Cheap when nothing new is full.
  void CommitComputed(SeqId seq, std::span<const int32_t> tokens, int32_t num_computed);

  // Drops the sequence's references; blocks reaching 0 become free (cached ones last in
  // the eviction order, the sequence's tail blocks before its head). Unknown seq: no-op.
  void FreeSequence(SeqId seq);

  // Removes `seq` and returns its block table; the caller now holds the references and
  // must give them back with ReleaseBlocks. Unknown seq: empty.
  std::vector<BlockId> DetachSequence(SeqId seq);
  void ReleaseBlocks(std::span<const BlockId> blocks);
  // Takes one more reference on each of `blocks` (allocated ones): they stay out of the
  // free list until ReleaseBlocks gives the references back.
  void RetainBlocks(std::span<const BlockId> blocks);

  // Block table of `seq` (physical block of token t is table[t / block_size]), or null.
  // The pointer is valid until the next non-const call.
  const std::vector<BlockId>* BlockTable(SeqId seq) const;

  // Prefix-cache counters: tokens asked about in AllocateSequence and tokens found.
  int64_t prefix_queries() const { return prefix_queries_; }
  int64_t prefix_hits() const { return prefix_hits_; }

 private:
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;  // the block's tokens while hashed (collision check)
    std::list<BlockId>::iterator free_pos;
  };
  struct SeqBlocks {
    std::vector<BlockId> table;
    int32_t num_hashed = 0;  // leading blocks already published or taken from cache
    uint64_t last_hash = 0;  // chain hash of block num_hashed - 1
  };

  explicit BlockManager(const BlockManagerOptions& options);
  // Walks cached full blocks of `tokens`; fills `out` (may be null) with their ids.
  int32_t MatchPrefix(std::span<const int32_t> tokens, std::vector<BlockId>* out,
                      uint64_t* last_hash) const;
  BlockId PopFree();  // precondition: free_list_ not empty
  void AddRef(BlockId b);
  void DropRef(BlockId b);

  const int32_t block_size_;
  const bool prefix_caching_;
  std::vector<Block> blocks_;
  std::list<BlockId> free_list_;                  // front = next to reuse
  std::unordered_map<uint64_t, BlockId> cached_;  // chain hash -> block
  std::unordered_map<SeqId, SeqBlocks> seqs_;
  int64_t prefix_queries_ = 0;
  int64_t prefix_hits_ = 0;
};

// Chain hash of one full block (exposed for tests and for the connector).
uint64_t HashBlockTokens(uint64_t parent_hash, std::span<const int32_t> tokens);

}  // namespace ferry::engine
