#include "engine/scheduler.h"

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>

namespace ferry::engine {
namespace {

// Tokens of `seq` to compute this step: its uncomputed ones within the budget, and while its
// prompt is scored (each of those tokens returns logits) within *scoring_budget, which it
// uses up.
int32_t ChunkTokens(const Sequence& seq, int32_t budget, int32_t* scoring_budget) {
  int32_t n = std::min(static_cast<int32_t>(seq.tokens.size()) - seq.num_computed, budget);
  if (seq.scoring_prompt()) {
    n = std::min(n, *scoring_budget);
    *scoring_budget -= std::max(0, n);
  }
  return n;
}

// The tokens the prefix cache may match for `seq`: all of them, or while its prompt is
// scored only up to the first position whose logits are still needed.
std::span<const int32_t> MatchableTokens(const Sequence& seq) {
  std::span<const int32_t> all(seq.tokens);
  if (!seq.scoring_prompt()) return all;
  return all.first(static_cast<size_t>(seq.prompt_logprobs_done) + 1);  // hits are < size
}

}  // namespace

Scheduler::Scheduler(const SchedulerOptions& options, BlockManager* blocks, KvConnector* connector)
    : options_(options), blocks_(blocks), connector_(connector) {}

void Scheduler::Add(std::unique_ptr<Sequence> seq) {
  seq->status = SeqStatus::kWaiting;
  waiting_.push_back(seq.get());
  const SeqId id = seq->id;
  seqs_.emplace(id, std::move(seq));
}

void Scheduler::Preempt(Sequence* seq, SchedulerOutput* out) {
  blocks_->FreeSequence(seq->id);
  seq->num_computed = 0;
  seq->status = SeqStatus::kWaiting;
  ++seq->num_preemptions;
  ++num_preemptions_;
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  waiting_.push_front(seq);
  out->preempted.push_back(seq);
}

Scheduler::AdmitResult Scheduler::Admit(size_t index, int32_t* budget, int32_t* scoring_budget,
                                        SchedulerOutput* out) {
  Sequence* seq = waiting_[index];
  if (seq->scoring_prompt() && *scoring_budget <= 0) return AdmitResult::kSkipped;  // next step
  const auto total = static_cast<int32_t>(seq->tokens.size());
  const int32_t cached = blocks_->CachedPrefixTokens(MatchableTokens(*seq));
  int32_t external = 0;
  if (connector_ != nullptr && !seq->kv_matched && !seq->scoring_prompt()) {
    // First admission only: a preempted sequence recomputes (its loaded KV may be gone).
    // A scored prompt is never asked for: loaded KV would skip the positions to score.
    KvMatch m = connector_->GetNumNewMatchedTokens({seq->request_id, seq->prompt()}, cached);
    if (m.pending) return AdmitResult::kSkipped;
    if (!m.error.ok()) {
      out->refused.emplace_back(seq, std::move(m.error));
      seq->kv_matched = true;
      return AdmitResult::kSkipped;
    }
    seq->kv_matched = true;
    external = std::clamp(m.num_tokens, 0, total - cached);
  }
  // A loading sequence needs blocks for what it loads; others for this step's chunk.
  const int32_t hold =
      external > 0 ? cached + external : cached + std::min(total - cached, *budget);
  auto got = blocks_->AllocateSequence(seq->id, MatchableTokens(*seq), hold);
  if (!got.ok()) {
    if (external > 0) seq->kv_matched = false;  // ask again when blocks are free
    return AdmitResult::kNoBlocks;
  }
  waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(index));
  seq->num_computed = *got;
  if (!seq->admitted_once) seq->cached_prompt_tokens = *got;
  seq->admitted_once = true;
  if (external > 0) {
    seq->num_external_tokens = external;
    connector_->UpdateStateAfterAlloc({seq->request_id, seq->prompt()},
                                      *blocks_->BlockTable(seq->id), *got, external);
    seq->status = SeqStatus::kWaitingForRemoteKv;
    ++num_parked_;
    out->parked.push_back(seq);
    return AdmitResult::kAdmitted;
  }
  seq->status = SeqStatus::kRunning;
  running_.push_back(seq);
  const int32_t n = ChunkTokens(*seq, *budget, scoring_budget);
  out->chunks.push_back({seq, seq->num_computed, n, seq->num_computed + n == total});
  *budget -= n;
  return AdmitResult::kAdmitted;
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int32_t budget = options_.max_num_batched_tokens;
  int32_t scoring_budget = kMaxScoringTokensPerStep;
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    const auto total = static_cast<int32_t>(seq->tokens.size());
    const int32_t n = ChunkTokens(*seq, budget, &scoring_budget);
    if (n <= 0) continue;
    bool self_preempted = false;
    while (!blocks_->Reserve(seq->id, seq->num_computed + n).ok()) {
      Sequence* victim = running_.back();  // newest; never scheduled yet in this step
      if (victim == seq) self_preempted = true;
      Preempt(victim, &out);
      if (self_preempted) break;
    }
    if (self_preempted) break;
    out.chunks.push_back({seq, seq->num_computed, n, seq->num_computed + n == total});
    budget -= n;
  }
  if (!out.preempted.empty()) return out;
  size_t i = 0;
  while (i < waiting_.size() && budget > 0 &&
         static_cast<int32_t>(running_.size()) + num_parked_ < options_.max_num_seqs) {
    const AdmitResult r = Admit(i, &budget, &scoring_budget, &out);
    if (r == AdmitResult::kNoBlocks) break;
    if (r == AdmitResult::kSkipped) ++i;
  }
  return out;
}

void Scheduler::OnChunksComputed(const SchedulerOutput& out) {
  for (const auto& c : out.chunks) {
    c.seq->num_computed = c.start + c.num_tokens;
    blocks_->CommitComputed(c.seq->id, c.seq->tokens, c.seq->num_computed);
  }
}

std::unique_ptr<Sequence> Scheduler::Remove(SeqId id, bool keep_blocks,
                                            std::vector<BlockId>* kept) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return nullptr;
  std::unique_ptr<Sequence> seq = std::move(it->second);
  seqs_.erase(it);
  switch (seq->status) {
    case SeqStatus::kWaiting:
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq.get()));
      break;
    case SeqStatus::kRunning:
      running_.erase(std::find(running_.begin(), running_.end(), seq.get()));
      break;
    case SeqStatus::kWaitingForRemoteKv:
      --num_parked_;
      break;
  }
  if (keep_blocks && kept != nullptr) {
    *kept = blocks_->DetachSequence(id);
  } else {
    blocks_->FreeSequence(id);
  }
  return seq;
}

Status Scheduler::OnKvLoaded(SeqId id, bool ok) {
  Sequence* seq = Find(id);
  if (seq == nullptr) return NotFoundError("unknown sequence " + std::to_string(id));
  if (seq->status != SeqStatus::kWaitingForRemoteKv) {
    return FailedPreconditionError("sequence " + std::to_string(id) + " is not waiting for KV");
  }
  --num_parked_;
  if (ok) {
    const int32_t loaded =
        std::min(seq->num_computed + seq->num_external_tokens, seq->prompt_len - 1);
    seq->num_loaded_tokens = std::max(0, loaded - seq->num_computed);
    seq->num_computed = std::max(seq->num_computed, loaded);
    // The loaded blocks' tokens join the prefix cache like computed ones.
    blocks_->CommitComputed(seq->id, seq->tokens, seq->num_computed);
  }
  seq->status = SeqStatus::kRunning;
  running_.push_back(seq);
  return OkStatus();
}

Sequence* Scheduler::Find(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

std::vector<Sequence*> Scheduler::AllSequences() const {
  std::vector<Sequence*> all;
  for (const auto& [id, seq] : seqs_) all.push_back(seq.get());
  return all;
}

}  // namespace ferry::engine
