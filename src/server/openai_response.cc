#include "server/openai_response.h"

#include <chrono>

namespace ferry::server {

using nlohmann::json;

json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json FullResponse(const ResponseContext& ctx, const std::vector<ChoiceOutput>& choices,
                  const Usage& usage, const json& kv_transfer_params) {
  json list = json::array();
  for (const ChoiceOutput& c : choices) {
    json choice = {
        {"index", c.index}, {"logprobs", c.logprobs}, {"finish_reason", c.finish_reason}};
    if (ctx.kind == ApiKind::kChat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    list.push_back(std::move(choice));
  }
  return {{"id", ctx.id},
          {"object", ctx.kind == ApiKind::kChat ? "chat.completion" : "text_completion"},
          {"created", ctx.created},
          {"model", ctx.model},
          {"choices", std::move(list)},
          {"usage", UsageJson(usage)},
          {"kv_transfer_params", kv_transfer_params}};
}

json StreamChunk(const ResponseContext& ctx, const std::string& text,
                 const std::optional<std::string>& finish_reason, bool role_only,
                 bool with_usage_null, int32_t index, const json& logprobs) {
  json choice = {{"index", index}, {"logprobs", logprobs}};
  choice["finish_reason"] = finish_reason ? json(*finish_reason) : json(nullptr);
  if (ctx.kind == ApiKind::kChat) {
    choice["delta"] =
        role_only ? json{{"role", "assistant"}, {"content", ""}} : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  json chunk = {
      {"id", ctx.id},
      {"object", ctx.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
      {"created", ctx.created},
      {"model", ctx.model},
      {"choices", json::array({choice})}};
  if (with_usage_null) chunk["usage"] = nullptr;
  return chunk;
}

json UsageChunk(const ResponseContext& ctx, const Usage& usage) {
  return {{"id", ctx.id},
          {"object", ctx.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", ctx.created},
          {"model", ctx.model},
          {"choices", json::array()},
          {"usage", UsageJson(usage)}};
}

json ErrorJson(int http_status, const std::string& message, const std::string& param) {
  std::string type = "BadRequestError";
  if (http_status == 401) type = "AuthenticationError";
  if (http_status == 404) type = "NotFoundError";
  if (http_status == 503) type = "ServiceUnavailableError";
  if (http_status >= 500 && http_status != 503) type = "InternalServerError";
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", http_status}}}};
}

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kAlreadyExists:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented:
      return 400;
    case StatusCode::kFailedPrecondition:
      return 400;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string SseEvent(const json& j) { return "data: " + Dump(j) + "\n\n"; }

int64_t NowUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ferry::server
