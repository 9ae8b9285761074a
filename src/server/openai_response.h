// JSON bodies of OpenAI-style responses: complete answers, SSE chunks and errors.
//
//   ResponseContext ctx{ApiKind::kChat, "chatcmpl-" + rid, "tiny", NowUnixSeconds()};
//   std::string sse = SseEvent(ChatChunk(ctx, "Hel", std::nullopt));
//
// Every JSON text is produced with invalid UTF-8 replaced by U+FFFD, so a model that emits
// broken bytes never makes serialisation fail. Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "server/openai_request.h"

namespace ferry::server {

struct ResponseContext {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;       // "cmpl-<request id>" / "chatcmpl-<request id>"
  std::string model;    // served model name
  int64_t created = 0;  // Unix seconds
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;
};

nlohmann::json UsageJson(const Usage& usage);

// One choice of a non-streaming answer.
struct ChoiceOutput {
  int32_t index = 0;  // prompt_index * n + sample_index
  std::string text;
  std::string finish_reason;
  nlohmann::json logprobs;  // null when not asked for (server/logprobs_json.h)
};

// Non-streaming answer with top-level kv_transfer_params (null when nothing to report).
nlohmann::json FullResponse(const ResponseContext& ctx, const std::vector<ChoiceOutput>& choices,
                            const Usage& usage, const nlohmann::json& kv_transfer_params);

// One streaming chunk of choice `index`. Chat: `role_only` gives the opening
// {"role":"assistant","content":""} delta. finish_reason null until the choice's last chunk.
// `with_usage_null` adds "usage": null (what OpenAI sends on every chunk when include_usage
// is on). `logprobs`: the logprobs of the chunk's tokens, or null.
nlohmann::json StreamChunk(const ResponseContext& ctx, const std::string& text,
                           const std::optional<std::string>& finish_reason, bool role_only,
                           bool with_usage_null, int32_t index = 0,
                           const nlohmann::json& logprobs = nullptr);
// The final usage chunk of stream_options.include_usage: empty choices plus usage.
nlohmann::json UsageChunk(const ResponseContext& ctx, const Usage& usage);

// {"error": {"message", "type", "param", "code"}}; type and code follow the HTTP status
// (400 BadRequestError, 404 NotFoundError, 503 ServiceUnavailableError, 500 InternalServerError).
nlohmann::json ErrorJson(int http_status, const std::string& message, const std::string& param);
// HTTP status for a Status from parsing or the engine.
int HttpStatusFor(const Status& status);

// Serialises with invalid UTF-8 replaced.
std::string Dump(const nlohmann::json& j);
// "data: <json>\n\n"
std::string SseEvent(const nlohmann::json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

int64_t NowUnixSeconds();

}  // namespace ferry::server
