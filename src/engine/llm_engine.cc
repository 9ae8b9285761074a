#include "engine/llm_engine.h"

#include <algorithm>
#include <chrono>

#include "common/deadline.h"
#include "common/log.h"
#include "common/mutex.h"

namespace ferry::engine {

Result<std::unique_ptr<LlmEngine>> LlmEngine::Create(std::unique_ptr<Model> model,
                                                     std::shared_ptr<const Tokenizer> tokenizer,
                                                     const EngineOptions& options) {
  if (model == nullptr || tokenizer == nullptr) {
    return InvalidArgumentError("engine needs a model and a tokenizer");
  }
  if (options.block_size <= 0 || options.num_kv_blocks <= 0 || options.max_num_seqs <= 0 ||
      options.max_num_batched_tokens <= 0 || options.max_model_len < 0) {
    return InvalidArgumentError(
        "engine options: block_size, num_kv_blocks, max_num_seqs and "
        "max_num_batched_tokens must be positive, max_model_len >= 0");
  }
  int64_t max_len =
      options.max_model_len > 0 ? options.max_model_len : model->config().max_position_embeddings;
  if (max_len <= 0) max_len = 2048;
  const int64_t pool_tokens = static_cast<int64_t>(options.num_kv_blocks) * options.block_size;
  if (max_len > pool_tokens) {
    FERRY_LOG_WARN("max_model_len {} exceeds the KV pool ({} blocks x {} tokens); using {}",
                   max_len, options.num_kv_blocks, options.block_size, pool_tokens);
    max_len = pool_tokens;
  }
  auto engine = std::unique_ptr<LlmEngine>(new LlmEngine(std::move(model), std::move(tokenizer),
                                                         options, static_cast<int32_t>(max_len)));
  FERRY_ASSIGN_OR_RETURN(engine->kv_cache_, KvCache::Create(engine->model_->MakeKvLayout(
                                                options.block_size, options.num_kv_blocks)));
  FERRY_ASSIGN_OR_RETURN(
      engine->blocks_,
      BlockManager::Create({.num_blocks = options.num_kv_blocks,
                            .block_size = options.block_size,
                            .enable_prefix_caching = options.enable_prefix_caching}));
  engine->scheduler_ = std::make_unique<Scheduler>(
      SchedulerOptions{.max_num_seqs = options.max_num_seqs,
                       .max_num_batched_tokens = options.max_num_batched_tokens},
      engine->blocks_.get());
  {
    MutexLock lock(&engine->mu_);  // uncontended: no other thread sees the engine yet
    engine->stats_.kv_blocks_total = options.num_kv_blocks;
  }
  return engine;
}

LlmEngine::LlmEngine(std::unique_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                     const EngineOptions& options, int32_t max_model_len)
    : options_(options),
      max_model_len_(max_model_len),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)) {
  eos_ids_ = model_->config().eos_token_ids;
  for (int32_t id : tokenizer_->eos_token_ids()) {
    if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
  }
}

LlmEngine::~LlmEngine() { Stop(); }

Status LlmEngine::Start() {
  if (started_) return FailedPreconditionError("engine already started");
  started_ = true;
  alive_ = true;
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void LlmEngine::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
  DetachConnector();
}

void LlmEngine::DetachConnector() {
  if (!connector_) return;
  // Loads write into the KV cache and saves read it: both end before it goes.
  const Deadline deadline = Deadline::In(std::chrono::seconds(10));
  if (Status st = connector_->WaitForLoads(deadline); !st.ok()) {
    FERRY_LOG_WARN("engine stop: {}", st.ToString());
  }
  if (Status st = connector_->WaitForSaves(deadline); !st.ok()) {
    FERRY_LOG_WARN("engine stop: {}", st.ToString());
  }
  scheduler_->set_connector(nullptr);
  connector_.reset();
}

Result<std::shared_ptr<RequestStream>> LlmEngine::Submit(GenerateRequest request) {
  const auto n = static_cast<int32_t>(request.prompt_tokens.size());
  if (n == 0) return InvalidArgumentError("the prompt is empty");
  if (n >= max_model_len_) {
    return InvalidArgumentError("the prompt has " + std::to_string(n) +
                                " tokens; this model allows at most " +
                                std::to_string(max_model_len_ - 1) + " (max_model_len " +
                                std::to_string(max_model_len_) + " includes the output)");
  }
  const int32_t vocab = model_->config().vocab_size;
  for (int32_t id : request.prompt_tokens) {
    if (id < 0 || id >= vocab) {
      return InvalidArgumentError("token id " + std::to_string(id) +
                                  " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  if (request.params.max_tokens < 0) return InvalidArgumentError("max_tokens must not be negative");
  if (request.params.logprobs > kMaxLogprobs || request.params.prompt_logprobs > kMaxLogprobs) {
    return InvalidArgumentError("logprobs: at most " + std::to_string(kMaxLogprobs) +
                                " alternatives per token")
        .WithField("logprobs");
  }
  auto seq = std::make_unique<Sequence>();
  seq->request_id = request.request_id;
  seq->tokens = std::move(request.prompt_tokens);
  seq->prompt_len = n;
  seq->rng = MakeSamplerRng(request.params.seed);
  seq->text = OutputText(request.params.stop);
  seq->params = std::move(request.params);
  seq->stream = std::make_shared<RequestStream>(std::move(request.signal));
  seq->arrival_ns = NowNanos();
  auto stream = seq->stream;
  const std::string rid = seq->request_id;
  {
    MutexLock lock(&mu_);
    if (stop_ || !alive_) return UnavailableError("the engine is not running");
    MutexLock ids_lock(&in_flight_mu_);
    if (!in_flight_.insert(rid).second) {
      return AlreadyExistsError("request id '" + rid + "' is already in flight");
    }
  }
  // Outside mu_: the connector takes its own locks, and calls OnKvTransferDone (which takes
  // mu_) while holding them.
  if (connector_) {
    if (Status st = connector_->PrepareRequest(rid, request.kv_transfer_params); !st.ok()) {
      MutexLock ids_lock(&in_flight_mu_);
      in_flight_.erase(rid);
      // Errors that name their field (kv_transfer_params.transfer_id) stay as they are.
      if (!st.field().empty()) return st;
      return st.WithContext("kv_transfer_params").WithField("kv_transfer_params");
    }
  }
  {
    MutexLock lock(&mu_);
    if (stop_ || !alive_) {
      MutexLock ids_lock(&in_flight_mu_);
      in_flight_.erase(rid);
      if (connector_) connector_->ForgetRequest(rid);
      return UnavailableError("the engine is not running");
    }
    inbox_.push_back(std::move(seq));
  }
  cv_.SignalAll();
  return stream;
}

Status LlmEngine::AttachKvConnector(std::unique_ptr<KvConnector> connector) {
  if (connector == nullptr) return InvalidArgumentError("no connector given");
  if (started_) return FailedPreconditionError("attach the KV connector before Start()");
  if (connector_) return FailedPreconditionError("a KV connector is attached already");
  FERRY_RETURN_IF_ERROR(connector->Bind(this, *kv_cache_));
  connector_ = std::move(connector);
  scheduler_->set_connector(connector_.get());
  return OkStatus();
}

void LlmEngine::OnKvTransferDone(KvTransferDone done) {
  {
    MutexLock lock(&mu_);
    kv_done_.push_back(std::move(done));
  }
  cv_.SignalAll();
}

void LlmEngine::Abort(const std::string& request_id) {
  {
    MutexLock lock(&mu_);
    aborts_.push_back(request_id);
  }
  cv_.SignalAll();
}

void LlmEngine::HoldBlocks(SeqId seq, std::chrono::milliseconds hold) {
  if (hold.count() <= 0) return;
  const std::vector<BlockId>* table = blocks_->BlockTable(seq);
  if (table == nullptr || table->empty()) return;
  blocks_->RetainBlocks(*table);
  held_blocks_.emplace_back(SteadyClock::now() + hold, *table);
}

void LlmEngine::HoldBlockList(std::vector<BlockId> blocks, std::chrono::milliseconds hold) {
  if (hold.count() <= 0) {
    blocks_->ReleaseBlocks(blocks);
    return;
  }
  held_blocks_.emplace_back(SteadyClock::now() + hold, std::move(blocks));
}

void LlmEngine::ReleaseExpiredHolds() {
  if (held_blocks_.empty()) return;
  const auto now = SteadyClock::now();
  for (auto it = held_blocks_.begin(); it != held_blocks_.end();) {
    if (it->first <= now) {
      blocks_->ReleaseBlocks(it->second);
      it = held_blocks_.erase(it);
    } else {
      ++it;
    }
  }
}

EngineStats LlmEngine::Stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void LlmEngine::DrainInbox() {
  // The queues are taken under mu_ and handled without it: Finish and ApplyKvDone call the
  // connector, which may call OnKvTransferDone (taking mu_) from inside those calls.
  std::vector<std::unique_ptr<Sequence>> inbox;
  std::vector<std::string> aborts;
  std::vector<KvTransferDone> kv_done;
  {
    MutexLock lock(&mu_);
    inbox.swap(inbox_);
    aborts.swap(aborts_);
    kv_done.swap(kv_done_);
  }
  for (auto& seq : inbox) {
    seq->id = next_seq_id_++;
    by_request_id_[seq->request_id] = seq->id;
    prompt_tokens_total_ += seq->prompt_len;
    scheduler_->Add(std::move(seq));
  }
  for (const auto& rid : aborts) {
    auto it = by_request_id_.find(rid);
    if (it == by_request_id_.end()) continue;
    Sequence* seq = scheduler_->Find(it->second);
    if (seq == nullptr) continue;
    Finish(seq, "abort", OkStatus(), seq->text.TakeDelta());
  }
  for (KvTransferDone& done : kv_done) ApplyKvDone(done);
  ReleaseExpiredHolds();
}

void LlmEngine::ApplyKvDone(KvTransferDone& done) {
  switch (done.kind) {
    case KvTransferKind::kLookup:
      return;  // the next Schedule asks again
    case KvTransferKind::kSave: {
      auto it = saving_blocks_.find(done.request_id);
      if (it == saving_blocks_.end()) return;
      blocks_->ReleaseBlocks(it->second);
      saving_blocks_.erase(it);
      return;
    }
    case KvTransferKind::kBlocksFreed: {
      auto it = kept_blocks_.find(done.request_id);
      if (it == kept_blocks_.end()) return;
      HoldBlockList(std::move(it->second.blocks), it->second.hold);
      kept_blocks_.erase(it);
      return;
    }
    case KvTransferKind::kLoad:
      break;
  }
  auto it = by_request_id_.find(done.request_id);
  if (it == by_request_id_.end()) return;
  const SeqId id = it->second;
  Sequence* seq = scheduler_->Find(id);
  if (seq == nullptr || seq->status != SeqStatus::kWaitingForRemoteKv) return;
  const bool ok = done.status.ok();
  if (!ok) HoldBlocks(id, done.hold_blocks);  // recomputed in place, never reused early
  Status st = scheduler_->OnKvLoaded(id, ok);
  if (!st.ok()) FERRY_LOG_WARN("KV load for request {}: {}", done.request_id, st.ToString());
  if (!ok && done.fail_request) Finish(seq, "abort", std::move(done.status), {});
}

void LlmEngine::Loop() {
  while (true) {
    {
      MutexLock lock(&mu_);
      if (stop_) break;
    }
    DrainInbox();
    bool idle = false;
    {
      MutexLock lock(&mu_);
      PublishStats();
      idle = !scheduler_->HasWork();
    }
    DeliverOutputs();
    if (!idle) {
      Step();
      continue;
    }
    MutexLock lock(&mu_);
    cv_.WaitFor(&mu_, std::chrono::milliseconds(100),
                [&]() FERRY_REQUIRES(mu_) { return stop_ || HasInbox(); });
  }
  DrainInbox();  // stop_ is set: Submit takes nothing more
  {
    for (Sequence* seq : scheduler_->AllSequences()) {
      Finish(seq, "abort", UnavailableError("the engine is shutting down"), {});
    }
    for (auto& [rid, kept] : kept_blocks_) blocks_->ReleaseBlocks(kept.blocks);
    kept_blocks_.clear();
    for (auto& [rid, blocks] : saving_blocks_) blocks_->ReleaseBlocks(blocks);
    saving_blocks_.clear();
    for (auto& [until, blocks] : held_blocks_) blocks_->ReleaseBlocks(blocks);
    held_blocks_.clear();
    MutexLock lock(&mu_);
    PublishStats();
    alive_ = false;
  }
  DeliverOutputs();
}

void LlmEngine::Step() {
  SchedulerOutput batch = scheduler_->Schedule();
  for (auto& [seq, error] : batch.refused) Finish(seq, "abort", std::move(error), {});
  for (Sequence* seq : batch.parked) {
    connector_->StartLoad({seq->request_id, seq->prompt()});
  }
  if (batch.empty()) {
    // Nothing runnable (e.g. the head request waits for blocks held by parked requests).
    MutexLock lock(&mu_);
    PublishStats();
    cv_.WaitFor(&mu_, std::chrono::milliseconds(5),
                [&]() FERRY_REQUIRES(mu_) { return stop_ || HasInbox(); });
    return;
  }
  std::vector<SequenceChunk> chunks;
  chunks.reserve(batch.chunks.size());
  size_t rows = 0;  // logits rows the forward pass returns
  for (const auto& c : batch.chunks) {
    Sequence* seq = c.seq;
    // A scored prompt's chunks return every token's logits: token i's row scores token i+1.
    const bool all = seq->scoring_prompt() && c.start < seq->prompt_len - 1;
    chunks.push_back({std::span<const int32_t>(seq->tokens).subspan(c.start, c.num_tokens), c.start,
                      *blocks_->BlockTable(seq->id), c.want_logits, all});
    rows += all ? static_cast<size_t>(c.num_tokens) : (c.want_logits ? 1 : 0);
  }
  Status st = model_->Forward(chunks, kv_cache_->data(), kv_cache_->layout(), &logits_);
  if (st.ok() && logits_.size() < rows * static_cast<size_t>(model_->config().vocab_size)) {
    st = InternalError("the model returned " + std::to_string(logits_.size()) + " logits for " +
                       std::to_string(rows) + " rows");
  }
  if (!st.ok()) {
    FERRY_LOG_ERROR("forward pass failed: {}", st.ToString());
    for (const auto& c : batch.chunks) Finish(c.seq, "abort", st, {});
  } else {
    scheduler_->OnChunksComputed(batch);
    for (const auto& c : batch.chunks) {
      prompt_tokens_computed_ +=
          std::max(0, std::min(c.start + c.num_tokens, c.seq->prompt_len) - c.start);
    }
    if (connector_) OfferSaves(batch);
    const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
    auto row_logits = [&](size_t row) {
      return std::span<const float>(logits_.data() + row * vocab, vocab);
    };
    size_t row = 0;
    for (size_t i = 0; i < batch.chunks.size(); ++i) {
      const ScheduledChunk& c = batch.chunks[i];
      Sequence* seq = c.seq;
      if (chunks[i].all_logits) {
        ScorePrompt(seq, c, logits_.data() + row * vocab);
        row += static_cast<size_t>(c.num_tokens);
        if (!c.want_logits) continue;
      } else {
        if (!c.want_logits) continue;
        ++row;
      }
      std::span<const float> logits = row_logits(row - 1);  // the chunk's last token
      if (seq->num_output_tokens() >= seq->params.max_tokens) {
        // max_tokens 0: the prompt was run (and scored); nothing is sampled.
        Finish(seq, "length", OkStatus(), {});
        continue;
      }
      const bool ban_eos =
          !seq->params.ignore_eos && seq->num_output_tokens() < seq->params.min_tokens;
      const int32_t token = SampleToken(
          logits, seq->params,
          ban_eos ? std::span<const int32_t>(eos_ids_) : std::span<const int32_t>(), &seq->rng);
      if (seq->params.logprobs >= 0) {
        seq->last_logprob = ComputeTokenLogprob(logits, token, seq->params.logprobs);
      }
      seq->tokens.push_back(token);
      ++generation_tokens_total_;
      OnTokenSampled(seq, token);
    }
  }
  ++steps_;
  {
    MutexLock lock(&mu_);
    PublishStats();
  }
  DeliverOutputs();
}

void LlmEngine::ScorePrompt(Sequence* seq, const ScheduledChunk& c, const float* rows) {
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  for (int32_t j = 0; j < c.num_tokens; ++j) {
    const int32_t pos = c.start + j + 1;  // the prompt position this row's logits predict
    if (pos != seq->prompt_logprobs_done + 1 || pos >= seq->prompt_len) continue;
    std::span<const float> logits(rows + static_cast<size_t>(j) * vocab, vocab);
    seq->prompt_logprobs.push_back(
        ComputeTokenLogprob(logits, seq->tokens[pos], seq->params.prompt_logprobs));
    ++seq->prompt_logprobs_done;
  }
}

void LlmEngine::TakeLogprobs(Sequence* seq, bool with_token, RequestOutput* out) {
  if (with_token && seq->params.logprobs >= 0) out->logprobs = {seq->last_logprob};
  if (seq->params.prompt_logprobs >= 0 && !seq->prompt_logprobs_sent && !seq->scoring_prompt()) {
    out->prompt_logprobs = std::move(seq->prompt_logprobs);
    seq->prompt_logprobs.clear();
    seq->prompt_logprobs_sent = true;
  }
}

void LlmEngine::OfferSaves(const SchedulerOutput& batch) {
  for (const auto& c : batch.chunks) {
    Sequence* seq = c.seq;
    if (seq->saved || seq->num_computed < seq->prompt_len) continue;
    seq->saved = true;
    if (saving_blocks_.count(seq->request_id) > 0) continue;  // an earlier save still reads
    const std::vector<BlockId>& table = *blocks_->BlockTable(seq->id);
    const size_t n =
        std::min(table.size(), static_cast<size_t>(blocks_->BlocksFor(seq->prompt_len)));
    std::vector<BlockId> blocks(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(n));
    blocks_->RetainBlocks(blocks);  // until kSave: never reused while the connector reads
    if (connector_->SaveKv({seq->request_id, seq->prompt()}, blocks, seq->prompt_len)) {
      saving_blocks_.emplace(seq->request_id, std::move(blocks));
    } else {
      blocks_->ReleaseBlocks(blocks);
    }
  }
}

void LlmEngine::DeliverOutputs() {
  for (auto& [stream, out] : outbox_) stream->Push(std::move(out));
  outbox_.clear();
}

void LlmEngine::OnTokenSampled(Sequence* seq, int32_t token) {
  const SamplingParams& p = seq->params;
  const int64_t now = NowNanos();
  if (seq->first_token_ns == 0) {
    seq->first_token_ns = now;
    prefix_hit_tokens_ += seq->cached_prompt_tokens;
    connector_hit_tokens_ += seq->num_loaded_tokens;
  }
  std::string reason;
  const bool is_eos =
      !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  if (is_eos) {
    reason = "stop";
  } else {
    const int32_t id = token;
    if (seq->text.Append(tokenizer_->Decode(std::span<const int32_t>(&id, 1)))) reason = "stop";
  }
  if (reason.empty() && seq->num_output_tokens() >= p.max_tokens) reason = "length";
  if (reason.empty() && static_cast<int32_t>(seq->tokens.size()) >= max_model_len_) {
    reason = "length";
  }
  if (!reason.empty()) {
    std::string text = seq->text.TakeDelta();
    text += seq->text.TakeRest();
    Finish(seq, reason, OkStatus(), std::move(text));
    return;
  }
  RequestOutput out;
  out.text = seq->text.TakeDelta();
  out.token_ids = {token};
  TakeLogprobs(seq, /*with_token=*/true, &out);
  out.prompt_tokens = seq->prompt_len;
  out.completion_tokens = seq->num_output_tokens();
  out.cached_tokens = seq->cached_prompt_tokens + seq->num_loaded_tokens;
  out.time_ns = now;
  outbox_.emplace_back(seq->stream, std::move(out));
}

void LlmEngine::Finish(Sequence* seq, const std::string& reason, Status error, std::string text) {
  RequestOutput out;
  out.text = std::move(text);
  const bool with_token = reason != "abort" && seq->num_output_tokens() > 0;
  if (with_token) out.token_ids = {seq->tokens.back()};
  if (reason != "abort") TakeLogprobs(seq, with_token, &out);
  out.finished = true;
  out.finish_reason = reason;
  out.error = std::move(error);
  out.prompt_tokens = seq->prompt_len;
  out.completion_tokens = std::max(0, seq->num_output_tokens());
  out.cached_tokens = seq->cached_prompt_tokens + seq->num_loaded_tokens;
  out.time_ns = NowNanos();
  std::shared_ptr<RequestStream> stream = seq->stream;
  const std::string rid = seq->request_id;
  const size_t prompt_blocks = static_cast<size_t>(blocks_->BlocksFor(seq->prompt_len));
  KvFinished answer;
  if (connector_) {
    const std::vector<BlockId>* table = blocks_->BlockTable(seq->id);
    std::span<const BlockId> blocks;
    if (table != nullptr)
      blocks = std::span<const BlockId>(*table).first(std::min(table->size(), prompt_blocks));
    const bool loading = seq->status == SeqStatus::kWaitingForRemoteKv;
    answer = connector_->RequestFinished({rid, seq->prompt()}, blocks, reason, loading);
    if (!answer.delay_free) HoldBlocks(seq->id, answer.hold_blocks);
  }
  out.kv_transfer_params = std::move(answer.response_params);
  std::vector<BlockId> kept;
  by_request_id_.erase(rid);
  scheduler_->Remove(seq->id, answer.delay_free, &kept);  // `seq` is gone after this
  if (answer.delay_free) {
    if (kept.size() > prompt_blocks) {
      // Only the prompt's KV is worth keeping; slots for sampled tokens go back now.
      blocks_->ReleaseBlocks(std::span<const BlockId>(kept).subspan(prompt_blocks));
      kept.resize(prompt_blocks);
    }
    kept_blocks_[rid] = {std::move(kept), answer.hold_blocks};
  }
  {
    MutexLock lock(&in_flight_mu_);
    in_flight_.erase(rid);
  }
  outbox_.emplace_back(std::move(stream), std::move(out));
}

void LlmEngine::PublishStats() {
  stats_.num_running = scheduler_->num_running();
  stats_.num_waiting = scheduler_->num_waiting() + static_cast<int32_t>(inbox_.size());
  stats_.kv_blocks_used = blocks_->num_used_blocks();
  stats_.kv_blocks_total = blocks_->num_blocks();
  stats_.kv_blocks_held = 0;
  for (const auto& [until, blocks] : held_blocks_) {
    stats_.kv_blocks_held += static_cast<int32_t>(blocks.size());
  }
  stats_.prompt_tokens_total = prompt_tokens_total_;
  stats_.generation_tokens_total = generation_tokens_total_;
  stats_.prefix_cache_hit_tokens = prefix_hit_tokens_;
  stats_.connector_hit_tokens = connector_hit_tokens_;
  stats_.prompt_tokens_computed = prompt_tokens_computed_;
  stats_.num_preemptions = scheduler_->num_preemptions();
  stats_.steps = steps_;
}

}  // namespace ferry::engine
