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
// always recomputed for its logits). A sequence that cannot get blocks stays waiting. A
// sequence whose prompt is scored (Sequence::scoring_prompt) takes prefix hits only before
// its first unscored position, and scored prompts get kMaxScoringTokensPerStep tokens per
// step between them.
//
// With a KV connector (engine/kv_connector.h), a sequence's first admission asks it how
// many tokens after the local prefix hits it can provide. A pending answer leaves the
// sequence waiting in place (later ones may be admitted past it); n > 0 allocates blocks
// for local + n tokens, tells the connector (UpdateStateAfterAlloc) and parks the sequence
// (SchedulerOutput::parked) until OnKvLoaded.
//
// Thread safety: none; the engine thread owns the Scheduler.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/block_manager.h"
#include "engine/kv_connector.h"
#include "engine/sequence.h"

namespace ferry::engine {

// Most tokens of scored prompts (SamplingParams::prompt_logprobs) in one step: each returns
// a row of logits, so this bounds the step's logits memory (x vocab_size floats).
inline constexpr int32_t kMaxScoringTokensPerStep = 64;

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
  std::vector<Sequence*> parked;     // admitted with blocks, now waiting for a KV load
  // The connector refused these (still waiting; the engine finishes them with the error).
  std::vector<std::pair<Sequence*, Status>> refused;
  bool empty() const { return chunks.empty(); }
};

class Scheduler {
 public:
  // `blocks` and `connector` (may be null: none) must outlive the Scheduler.
  Scheduler(const SchedulerOptions& options, BlockManager* blocks,
            KvConnector* connector = nullptr);
  void set_connector(KvConnector* connector) { connector_ = connector; }

  void Add(std::unique_ptr<Sequence> seq);
  SchedulerOutput Schedule();
  void OnChunksComputed(const SchedulerOutput& out);

  // Removes a sequence in any state. With keep_blocks its block table is returned with
  // its references (see BlockManager::DetachSequence); otherwise the blocks are freed and
  // the result is empty. Returns null if unknown.
  std::unique_ptr<Sequence> Remove(SeqId id, bool keep_blocks, std::vector<BlockId>* kept);

  // A parked sequence's external tokens were loaded (ok: they count as computed, at most
  // prompt - 1) or could not be (!ok: computed locally). Errors: NotFound /
  // FailedPrecondition when `id` is not parked.
  Status OnKvLoaded(SeqId id, bool ok);

  Sequence* Find(SeqId id) const;
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_parked() const { return num_parked_; }
  int64_t num_preemptions() const { return num_preemptions_; }
  std::vector<Sequence*> AllSequences() const;

 private:
  enum class AdmitResult { kAdmitted, kNoBlocks, kSkipped };
  void Preempt(Sequence* seq, SchedulerOutput* out);
  // Admits waiting_[index] (kAdmitted: removed from waiting_); kNoBlocks: it cannot get
  // blocks now; kSkipped: the connector's answer is pending, or it refused the sequence.
  AdmitResult Admit(size_t index, int32_t* budget, int32_t* scoring_budget, SchedulerOutput* out);

  const SchedulerOptions options_;
  BlockManager* const blocks_;
  KvConnector* connector_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // admission order (oldest first)
  std::deque<Sequence*> waiting_;
  int32_t num_parked_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace ferry::engine
