// LlmEngine: one engine thread that owns the Model, the KV cache and the Scheduler and
// serves many requests with continuous batching.
//
// Example (namespace scope):
//   Status Generate(std::unique_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
//                   std::vector<int32_t> ids, SamplingParams p) {
//     EngineOptions opts{.num_kv_blocks = 1024, .max_num_seqs = 32};
//     FERRY_ASSIGN_OR_RETURN(auto engine, LlmEngine::Create(std::move(model), tokenizer, opts));
//     FERRY_RETURN_IF_ERROR(engine->Start());
//     GenerateRequest request;
//     request.request_id = "r1";
//     request.prompt_tokens = std::move(ids);
//     request.params = p;
//     FERRY_ASSIGN_OR_RETURN(auto stream, engine->Submit(std::move(request)));
//     // ... stream->Next(deadline, &out) until out.finished (see request_stream.h) ...
//     engine->Stop();  // also done by the destructor
//     return OkStatus();
//   }
//
// Every step runs one Model::Forward over prompt chunks of newly admitted requests and one
// decode token of every running request (see scheduler.h). With SamplingParams::logprobs /
// prompt_logprobs the outputs carry log-probabilities (engine/token_logprobs.h); with
// max_tokens 0 the prompt is run (and scored) and the request finishes with "length". A request
// finishes with "stop" (EOS or a stop string, which is trimmed), "length" (max_tokens or
// max_model_len) or "abort" (Abort(), engine stop, or a failed forward pass; then error is set).
//
// A KV connector (engine/kv_connector.h: another instance's KV, a KV pool) may be attached
// before Start; the engine calls it at admission, after prefills and at finish, and owns it.
//
// Thread safety: Submit, Abort, Stats, alive, OnKvTransferDone and the accessors are
// thread-safe. Start, Stop and AttachKvConnector must not race each other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
#include "engine/block_manager.h"
#include "engine/kv_cache.h"
#include "engine/kv_connector.h"
#include "engine/model.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"

namespace ferry::engine {

struct EngineOptions {
  int32_t block_size = 16;                // Tokens per KV block. Default: 16.
  int32_t num_kv_blocks = 0;              // KV blocks in the pool. Required (> 0).
  int32_t max_num_seqs = 64;              // Running requests at most. Default: 64.
  int32_t max_num_batched_tokens = 1024;  // Tokens per forward pass. Default: 1024.
  // Prompt + output tokens per request. Default (0): the model's max_position_embeddings.
  // Clamped to what the KV pool can hold.
  int32_t max_model_len = 0;
  bool enable_prefix_caching = true;  // Default: true.
};

struct GenerateRequest {
  std::string request_id;              // unique among requests in flight
  std::vector<int32_t> prompt_tokens;  // non-empty, ids < vocab size
  SamplingParams params;
  // The request's kv_transfer_params (a JSON object's text), "" when none: read by the KV
  // connector (KvConnector::PrepareRequest), opaque to the engine.
  std::string kv_transfer_params;
  // Notified on every output of the request (engine/stream_signal.h). Default: none.
  std::shared_ptr<StreamSignal> signal;
};

struct EngineStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t kv_blocks_used = 0;
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_held = 0;           // blocks held after failed remote loads
  int64_t prompt_tokens_total = 0;      // prompt tokens of admitted requests
  int64_t generation_tokens_total = 0;  // sampled tokens
  int64_t prefix_cache_hit_tokens = 0;  // prompt tokens found in the prefix cache
  int64_t connector_hit_tokens = 0;     // prompt tokens loaded by the KV connector
  int64_t prompt_tokens_computed = 0;   // prompt tokens run through the model (recomputes too)
  int64_t num_preemptions = 0;
  int64_t steps = 0;
};

class LlmEngine final : public KvTransferSink {
 public:
  // `tokenizer` is shared with the server (Encode/Decode are thread-safe).
  // Errors: InvalidArgument (bad options), ResourceExhausted (KV memory).
  static Result<std::unique_ptr<LlmEngine>> Create(std::unique_ptr<Model> model,
                                                   std::shared_ptr<const Tokenizer> tokenizer,
                                                   const EngineOptions& options);
  ~LlmEngine() override;
  LlmEngine(const LlmEngine&) = delete;
  LlmEngine& operator=(const LlmEngine&) = delete;

  // Starts the engine thread. Errors: FailedPrecondition if already started.
  Status Start();
  // Finishes every request with "abort", stops and joins the thread. Idempotent.
  void Stop();
  // True while the engine thread runs.
  bool alive() const { return alive_.load(); }

  // Queues a request. Errors: InvalidArgument (empty prompt, token out of range, prompt
  // of max_model_len tokens or more, max_tokens < 0, logprobs over kMaxLogprobs), AlreadyExists
  // (request_id in flight), Unavailable (engine not running).
  Result<std::shared_ptr<RequestStream>> Submit(GenerateRequest request);
  // Finishes the request with "abort" and frees its blocks (asynchronously, within one
  // step). Unknown ids are ignored.
  void Abort(const std::string& request_id);
  // Attaches the KV connector (engine/kv_connector.h) the engine will call, and binds it
  // to this engine and its KV cache. The engine owns it and destroys it when it stops,
  // after WaitForLoads/WaitForSaves and before the KV cache. Errors: FailedPrecondition
  // (already started, or a connector attached), and what KvConnector::Bind returns.
  Status AttachKvConnector(std::unique_ptr<KvConnector> connector);
  // The attached connector, or null. Valid until Stop().
  const KvConnector* kv_connector() const { return connector_.get(); }
  // KvTransferSink: a connector's asynchronous work finished (any thread).
  void OnKvTransferDone(KvTransferDone done) override;

  EngineStats Stats() const;
  int32_t max_model_len() const { return max_model_len_; }
  const ModelConfig& model_config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The KV region (base/size/layout) for registration with a transfer engine.
  const KvCache& kv_cache() const { return *kv_cache_; }

 private:
  LlmEngine(std::unique_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
            const EngineOptions& options, int32_t max_model_len);
  void Loop();
  // Engine thread, without mu_: admits new requests, applies aborts and KV completions.
  void DrainInbox();
  // Requests, aborts or KV completions are queued.
  bool HasInbox() const FERRY_REQUIRES(mu_) {
    return !inbox_.empty() || !aborts_.empty() || !kv_done_.empty();
  }
  void ApplyKvDone(KvTransferDone& done);
  // Holds the blocks of request `seq` for `hold` (a failed remote load's late writes).
  void HoldBlocks(SeqId seq, std::chrono::milliseconds hold);
  void HoldBlockList(std::vector<BlockId> blocks, std::chrono::milliseconds hold);
  // Offers the prompt KV of sequences whose prefill just finished to the connector.
  void OfferSaves(const SchedulerOutput& batch);
  // Waits for the connector's loads and saves, then destroys it (engine thread gone).
  void DetachConnector();
  // Releases holds whose time has come.
  void ReleaseExpiredHolds();
  void Step();
  // Records the prompt logprobs that the all_logits rows of chunk `c` give for positions
  // not scored yet. `rows`: the chunk's logits, (c.num_tokens, vocab_size).
  void ScorePrompt(Sequence* seq, const ScheduledChunk& c, const float* rows);
  // Moves the logprobs the output carries into *out: the sampled token's (with_token) and
  // the prompt's once it is all scored and not sent yet.
  void TakeLogprobs(Sequence* seq, bool with_token, RequestOutput* out);
  // Samples after a chunk, checks stop conditions and emits the output.
  void OnTokenSampled(Sequence* seq, int32_t token);
  void Finish(Sequence* seq, const std::string& reason, Status error, std::string text);
  void PublishStats() FERRY_REQUIRES(mu_);
  // Pushes the outputs queued by this step, after the stats that include them are public.
  void DeliverOutputs();

  const EngineOptions options_;
  const int32_t max_model_len_;
  std::unique_ptr<Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<KvCache> kv_cache_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<int32_t> eos_ids_;
  std::vector<float> logits_;  // [chunks wanting logits][vocab_size], engine thread only

  // Engine-thread state.
  std::unordered_map<std::string, SeqId> by_request_id_;
  std::unique_ptr<KvConnector> connector_;
  // Blocks kept after RequestFinished said delay_free, with the hold that follows.
  struct KeptBlocks {
    std::vector<BlockId> blocks;
    std::chrono::milliseconds hold{0};
  };
  std::unordered_map<std::string, KeptBlocks> kept_blocks_;
  // Blocks referenced for SaveKv until its kSave completion, by request id.
  std::unordered_map<std::string, std::vector<BlockId>> saving_blocks_;
  // Blocks held after a failed remote load, until the time given (engine thread only).
  std::vector<std::pair<SteadyClock::time_point, std::vector<BlockId>>> held_blocks_;
  SeqId next_seq_id_ = 1;
  std::vector<std::pair<std::shared_ptr<RequestStream>, RequestOutput>> outbox_;
  int64_t prompt_tokens_total_ = 0;
  int64_t generation_tokens_total_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t connector_hit_tokens_ = 0;
  int64_t prompt_tokens_computed_ = 0;
  int64_t steps_ = 0;

  mutable Mutex mu_;
  CondVar cv_;
  bool stop_ FERRY_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Sequence>> inbox_ FERRY_GUARDED_BY(mu_);
  std::vector<std::string> aborts_ FERRY_GUARDED_BY(mu_);
  std::vector<KvTransferDone> kv_done_ FERRY_GUARDED_BY(mu_);
  EngineStats stats_ FERRY_GUARDED_BY(mu_);
  Mutex in_flight_mu_ FERRY_ACQUIRED_AFTER(mu_);  // acquired after mu_ when both are held
  std::unordered_set<std::string> in_flight_ FERRY_GUARDED_BY(in_flight_mu_);
  std::thread thread_;
  std::atomic<bool> alive_{false};
  bool started_ = false;
};

}  // namespace ferry::engine
