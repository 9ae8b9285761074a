// Parsing and validation of OpenAI-style request bodies, without any HTTP.
//
//   auto req = ParseOpenAiRequest(body, ApiKind::kChat);
//   if (!req.ok()) return Reply(400, req.status());
//
// Accepted fields: model, prompt (string, [string] or [int ids]; completions), messages
// (chat; content as a string or a list of {"type":"text","text":...} parts), max_tokens,
// max_completion_tokens (chat; wins over max_tokens), temperature (>= 0), top_p (0, 1],
// top_k (-1/0 = off), seed, stop (string or list of strings), stream, stream_options
// {include_usage}, n (only 1), min_tokens, ignore_eos, kv_transfer_params (object or
// null, kept as is). Unknown fields are ignored, as the OpenAI server does.
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
#include "engine/tokenizer.h"
#include "ferry/status.h"

namespace ferry::server {

enum class ApiKind { kCompletion, kChat };

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;                          // "" when absent
  std::optional<std::string> prompt_text;     // completions: prompt as text
  std::vector<int32_t> prompt_tokens;         // completions: prompt as token ids
  std::vector<engine::ChatMessage> messages;  // chat
  std::optional<int32_t> max_tokens;          // absent: up to max_model_len
  engine::SamplingParams params;              // max_tokens filled in by the server
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  nlohmann::json kv_transfer_params;  // null when absent
};

// Largest body and deepest nesting ParseOpenAiRequest accepts.
inline constexpr size_t kMaxRequestBytes = 32u << 20;
inline constexpr int kMaxRequestDepth = 64;

// Errors: InvalidArgument (broken JSON, a body over kMaxRequestBytes or nested deeper than
// kMaxRequestDepth, wrong types, values out of range, min_tokens > max_tokens).
Result<OpenAiRequest> ParseOpenAiRequest(std::string_view body, ApiKind kind);

// The "param" of an error message produced by ParseOpenAiRequest ("max_tokens", ...), or
// "" when the message names none. Messages have the form "<param>: <what is wrong>".
std::string ErrorParam(const Status& status);

}  // namespace ferry::server
