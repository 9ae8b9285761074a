// Parsing and validation of OpenAI-style request bodies, without any HTTP.
//
//   auto req = ParseOpenAiRequest(body, ApiKind::kChat);
//   if (!req.ok()) return Reply(400, req.status());
//
// Accepted fields: model, prompt (completions: a string, a list of token ids, or a list of
// up to kMaxPrompts strings or token-id lists, one choice each), messages (chat; content as
// a string or a list of {"type":"text","text":...} parts), max_tokens (completions: 0 runs
// the prompt only), max_completion_tokens (chat; wins over max_tokens), temperature (>= 0),
// top_p (0, 1], top_k (-1/0 = off), seed, stop (string or list of strings), stream,
// stream_options {include_usage}, n (1 .. kMaxChoicesPerPrompt; n x prompts at most
// kMaxChoices), best_of (absent, null or equal to n), min_tokens, ignore_eos, logprobs
// (completions: 0 .. kMaxLogprobs alternatives; chat: true/false with top_logprobs
// 0 .. kMaxLogprobs, which needs logprobs true), echo (completions),
// return_tokens_as_token_ids (vLLM's: logprobs name tokens "token_id:<id>"), kv_transfer_params
// (object or null, kept as is). Unknown fields are ignored, as the OpenAI server does.
// Errors: InvalidArgument whose message names the field; `param` is set in ParseError.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "engine/token_logprobs.h"
#include "engine/tokenizer.h"
#include "ferry/status.h"

namespace ferry::server {

enum class ApiKind { kCompletion, kChat };

// One completions prompt: text, or token ids when `text` is absent.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> tokens;
};

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;                          // "" when absent
  std::vector<PromptInput> prompts;           // completions: one or more
  std::vector<engine::ChatMessage> messages;  // chat
  int32_t n = 1;                              // choices per prompt
  bool echo = false;                          // completions: prompt before the output
  bool return_tokens_as_token_ids = false;    // logprobs name tokens "token_id:<id>"
  // params.logprobs: alternatives per sampled token (-1: no logprobs); params.prompt_logprobs
  // the same for the prompt's tokens (completions with echo and logprobs).
  std::optional<int32_t> max_tokens;  // absent: up to max_model_len
  engine::SamplingParams params;      // max_tokens filled in by the server
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  nlohmann::json kv_transfer_params;  // null when absent
};

// Most prompts in one completions request, choices per prompt (n), and choices in all.
inline constexpr int32_t kMaxPrompts = 256;
inline constexpr int32_t kMaxChoicesPerPrompt = 16;
inline constexpr int32_t kMaxChoices = 256;

// Largest body and deepest nesting ParseOpenAiRequest accepts.
inline constexpr size_t kMaxRequestBytes = 32u << 20;
inline constexpr int kMaxRequestDepth = 64;

// Errors: InvalidArgument, with field() naming the request field where there is one (broken JSON, a
// body over kMaxRequestBytes or nested deeper than kMaxRequestDepth, wrong types, values out of
// range, min_tokens > max_tokens, more prompts or choices than the limits above, top_logprobs
// without logprobs, best_of != n).
Result<OpenAiRequest> ParseOpenAiRequest(std::string_view body, ApiKind kind);

}  // namespace ferry::server
