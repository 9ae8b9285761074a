// Sequence: the engine's state for one request. Owned by the Scheduler; touched only by the
// engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/block_manager.h"
#include "engine/output_text.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/token_logprobs.h"

namespace ferry::engine {

enum class SeqStatus {
  kWaiting,             // queued for (re)admission; holds no blocks
  kRunning,             // holds blocks; scheduled every step
  kWaitingForRemoteKv,  // holds blocks; parked until the connector's load is done
};

struct Sequence {
  SeqId id = 0;
  std::string request_id;
  std::vector<int32_t> tokens;  // prompt followed by the generated tokens
  int32_t prompt_len = 0;
  int32_t num_computed = 0;          // leading tokens whose KV is in the cache
  int32_t cached_prompt_tokens = 0;  // prefix-cache hit at first admission
  SeqStatus status = SeqStatus::kWaiting;
  int32_t num_preemptions = 0;
  bool admitted_once = false;

  SamplingParams params;
  // Prompt scoring (params.prompt_logprobs >= 0): entries for positions 1 .. so far, kept
  // until the first output takes them; prompt_logprobs_done counts positions scored (it
  // survives preemption, so a recompute scores only the rest and may reuse cached KV of
  // the positions before them).
  std::vector<TokenLogprob> prompt_logprobs;
  int32_t prompt_logprobs_done = 0;
  bool prompt_logprobs_sent = false;
  // Logprob of the last sampled token (params.logprobs >= 0), for its output.
  TokenLogprob last_logprob;
  SamplerRng rng;
  OutputText text;
  std::shared_ptr<RequestStream> stream;
  int64_t arrival_ns = 0;
  int64_t first_token_ns = 0;

  // KV connector state (engine/kv_connector.h).
  bool kv_matched = false;          // GetNumNewMatchedTokens answered (not pending)
  int32_t num_external_tokens = 0;  // tokens the connector loads after the local hits
  int32_t num_loaded_tokens = 0;    // prompt tokens the connector's load provided
  bool saved = false;               // SaveKv was offered the prompt

  int32_t num_output_tokens() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  // True while prompt positions still need scoring (their chunks carry every position's
  // logits, and the prefix cache may serve only the positions before them).
  bool scoring_prompt() const {
    return params.prompt_logprobs >= 0 && prompt_logprobs_done < prompt_len - 1;
  }
  std::span<const int32_t> prompt() const {
    return std::span<const int32_t>(tokens.data(), static_cast<size_t>(prompt_len));
  }
};

}  // namespace ferry::engine
