// Scheduler: continuous batching over a BlockManager.
//
//   Scheduler sched(options, block_manager);
//   sched.Add(std::move(seq));
//   SchedulerOutput batch = sched.Schedule();   // chunks for one Model::Forward
//   ... forward ...
//   sched.OnChunksComputed(batch);              // advance num_computed, publish blocks
//   ... sample, append tokens, finish: sched.Remove(id, keep_blocks) ...
//
// Each step first gives every running sequence its uncomputed tokens (one decode token, or
// the next chunk of a prompt), oldest first; when blocks run out it preempts the newest
// running sequence (frees its blocks and requeues it at the head of the waiting queue for
// recompute; prefix-cached blocks often make that cheap). Then, if nothing was preempted,
// it admits waiting sequences in arrival order while --max-num-seqs, the token budget and
// free blocks allow, skipping the prompt tokens found in the prefix cache (the last one is
// always recomputed for its logits). A sequence that cannot get blocks stays waiting.
//
// Thread safety: none; the engine thread owns the Scheduler.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/block_manager.h"
#include "engine/sequence.h"

namespace ferry::engine {

struct SchedulerOptions {
  int32_t max_num_seqs = 64;              // Sequences holding blocks at once. Default: 64.
  int32_t max_num_batched_tokens = 1024;  // Tokens per Forward call. Default: 1024.
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int32_t start = 0;  // first token index (== seq->num_computed when scheduled)
  int32_t num_tokens = 0;
  bool want_logits = false;  // the chunk reaches the end of seq->tokens: sample after it
};

struct SchedulerOutput {
  std::vector<ScheduledChunk> chunks;
  std::vector<Sequence*> preempted;  // requeued during this Schedule call
  std::vector<Sequence*> parked;     // admitted with blocks, now waiting for remote KV
  bool empty() const { return chunks.empty(); }
};

class Scheduler {
 public:
  // `blocks` must outlive the Scheduler.
  Scheduler(const SchedulerOptions& options, BlockManager* blocks);

  void Add(std::unique_ptr<Sequence> seq);
  SchedulerOutput Schedule();
  void OnChunksComputed(const SchedulerOutput& out);

  // Removes a sequence in any state. With keep_blocks its block table is returned with
  // its references (see BlockManager::DetachSequence); otherwise the blocks are freed and
  // the result is empty. Returns null if unknown.
  std::unique_ptr<Sequence> Remove(SeqId id, bool keep_blocks, std::vector<BlockId>* kept);

  // Connector hook: a parked sequence's prompt KV arrived (ok) or could not be loaded
  // (!ok: recompute locally). With ok, all prompt tokens but the last count as computed.
  // Errors: NotFound / FailedPrecondition when `id` is not parked.
  Status OnRemoteKvLoaded(SeqId id, bool ok);

  Sequence* Find(SeqId id) const;
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_parked() const { return num_parked_; }
  int64_t num_preemptions() const { return num_preemptions_; }
  std::vector<Sequence*> AllSequences() const;

 private:
  void Preempt(Sequence* seq, SchedulerOutput* out);
  // Admits waiting_.front(); returns false if it cannot get blocks now.
  bool Admit(int32_t* budget, SchedulerOutput* out);

  const SchedulerOptions options_;
  BlockManager* const blocks_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // admission order (oldest first)
  std::deque<Sequence*> waiting_;
  int32_t num_parked_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace ferry::engine
