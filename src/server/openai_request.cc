#include "server/openai_request.h"

#include "common/json_limits.h"

#include <cmath>
#include <limits>

namespace ferry::server {
namespace {

using nlohmann::json;

Status FieldError(const std::string& field, const std::string& what) {
  return InvalidArgumentError(field + ": " + what).WithField(field);
}

// Reads an optional integer field into *out. Integral floats (e.g. 16.0) are accepted.
Status ReadInt(const json& j, const char* key, int64_t lo, int64_t hi,
               std::optional<int64_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  int64_t v = 0;
  if (it->is_number_integer()) {
    v = it->is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(
                                       it->get<uint64_t>(), std::numeric_limits<int64_t>::max()))
                                 : it->get<int64_t>();
  } else if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>() &&
             std::abs(it->get<double>()) < 9e18) {
    v = static_cast<int64_t>(it->get<double>());
  } else {
    return FieldError(key, "must be an integer");
  }
  if (v < lo || v > hi) {
    return FieldError(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                               ", got " + std::to_string(v));
  }
  *out = v;
  return OkStatus();
}

Status ReadFloat(const json& j, const char* key, double lo, double hi, bool lo_open,
                 std::optional<double>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_number()) return FieldError(key, "must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || (lo_open && v == lo) || v > hi) {
    return FieldError(key, std::string("must be in ") + (lo_open ? "(" : "[") + std::to_string(lo) +
                               ", " + std::to_string(hi) + "]");
  }
  *out = v;
  return OkStatus();
}

Status ReadBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_boolean()) return FieldError(key, "must be true or false");
  *out = it->get<bool>();
  return OkStatus();
}

// One list of token ids as a prompt.
Status ReadTokenIds(const json& list, std::vector<int32_t>* out) {
  for (const auto& t : list) {
    if (!t.is_number_integer()) {
      return FieldError("prompt",
                        "must be a string, a list of token ids, or a list of strings or of "
                        "token-id lists");
    }
    const int64_t id = t.is_number_unsigned()
                           ? static_cast<int64_t>(std::min<uint64_t>(
                                 t.get<uint64_t>(), std::numeric_limits<int64_t>::max()))
                           : t.get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return FieldError("prompt", "token id " + t.dump() + " is out of range");
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return OkStatus();
}

Status ReadPrompt(const json& j, OpenAiRequest* req) {
  auto it = j.find("prompt");
  if (it == j.end() || it->is_null()) return FieldError("prompt", "is required");
  if (it->is_string()) {
    req->prompts.push_back({it->get<std::string>(), {}});
    return OkStatus();
  }
  if (!it->is_array() || it->empty()) {
    return FieldError("prompt",
                      "must be a string, a list of token ids, or a non-empty list of strings or "
                      "of token-id lists");
  }
  if ((*it)[0].is_number()) {  // one prompt of token ids
    req->prompts.emplace_back();
    return ReadTokenIds(*it, &req->prompts.back().tokens);
  }
  if (it->size() > static_cast<size_t>(kMaxPrompts)) {
    return FieldError("prompt", "at most " + std::to_string(kMaxPrompts) +
                                    " prompts per request, got " + std::to_string(it->size()));
  }
  for (const auto& p : *it) {
    if (p.is_string()) {
      req->prompts.push_back({p.get<std::string>(), {}});
    } else if (p.is_array() && !p.empty()) {
      req->prompts.emplace_back();
      FERRY_RETURN_IF_ERROR(ReadTokenIds(p, &req->prompts.back().tokens));
    } else {
      return FieldError("prompt",
                        "a list prompt must hold strings or non-empty lists of token ids, "
                        "one kind throughout");
    }
  }
  for (const auto& p : req->prompts) {
    if (p.text.has_value() != req->prompts[0].text.has_value()) {
      return FieldError("prompt", "a list prompt must hold only strings or only token-id lists");
    }
  }
  return OkStatus();
}

Status ReadMessages(const json& j, OpenAiRequest* req) {
  auto it = j.find("messages");
  if (it == j.end() || !it->is_array() || it->empty()) {
    return FieldError("messages", "must be a non-empty list of {role, content} objects");
  }
  for (const auto& m : *it) {
    if (!m.is_object()) return FieldError("messages", "each message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return FieldError("messages", "each message needs a string role");
    }
    engine::ChatMessage msg{role->get<std::string>(), ""};
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      // Allowed (e.g. assistant turns with tool calls); renders as empty.
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const auto& part : *content) {
        auto type = part.is_object() ? part.find("type") : part.end();
        auto text = part.is_object() ? part.find("text") : part.end();
        if (!part.is_object() || type == part.end() || *type != "text" || text == part.end() ||
            !text->is_string()) {
          return FieldError("messages", "only text content parts are supported");
        }
        msg.content += text->get<std::string>();
      }
    } else {
      return FieldError("messages", "content must be a string or a list of text parts");
    }
    req->messages.push_back(std::move(msg));
  }
  return OkStatus();
}

Status ReadStop(const json& j, std::vector<std::string>* stop) {
  auto it = j.find("stop");
  if (it == j.end() || it->is_null()) return OkStatus();
  if (it->is_string()) {
    stop->push_back(it->get<std::string>());
    return OkStatus();
  }
  if (!it->is_array()) return FieldError("stop", "must be a string or a list of strings");
  for (const auto& s : *it) {
    if (!s.is_string()) return FieldError("stop", "must be a string or a list of strings");
    stop->push_back(s.get<std::string>());
  }
  return OkStatus();
}

// Completions: logprobs k (alternatives per token) and echo; with both the prompt is scored.
// Chat: logprobs true/false and top_logprobs k.
Status ReadLogprobs(const json& j, ApiKind kind, OpenAiRequest* req) {
  std::optional<int64_t> k;
  if (kind == ApiKind::kCompletion) {
    auto it = j.find("logprobs");
    if (it != j.end() && it->is_boolean()) {
      return FieldError("logprobs", "completions take the number of alternatives per token (0 to " +
                                        std::to_string(engine::kMaxLogprobs) + "), not true/false");
    }
    FERRY_RETURN_IF_ERROR(ReadInt(j, "logprobs", 0, engine::kMaxLogprobs, &k));
    FERRY_RETURN_IF_ERROR(ReadBool(j, "echo", &req->echo));
    if (k) req->params.logprobs = static_cast<int32_t>(*k);
    if (k && req->echo) req->params.prompt_logprobs = static_cast<int32_t>(*k);
    return OkStatus();
  }
  bool logprobs = false;
  FERRY_RETURN_IF_ERROR(ReadBool(j, "logprobs", &logprobs));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "top_logprobs", 0, engine::kMaxLogprobs, &k));
  if (k && !logprobs) return FieldError("top_logprobs", "needs \"logprobs\": true");
  if (logprobs) req->params.logprobs = static_cast<int32_t>(k.value_or(0));
  return OkStatus();
}

}  // namespace

Result<OpenAiRequest> ParseOpenAiRequest(std::string_view body, ApiKind kind) {
  // Bounded: 100,000 nested brackets in a small body used to overflow the stack.
  auto parsed = ParseJson(body, {.max_bytes = kMaxRequestBytes, .max_depth = kMaxRequestDepth});
  if (!parsed.ok()) return InvalidArgumentError("the request body: " + parsed.status().message());
  json& j = *parsed;
  if (!j.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  OpenAiRequest req;
  req.kind = kind;
  if (auto it = j.find("model"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return FieldError("model", "must be a string");
    req.model = it->get<std::string>();
  }
  if (kind == ApiKind::kCompletion) {
    FERRY_RETURN_IF_ERROR(ReadPrompt(j, &req));
  } else {
    FERRY_RETURN_IF_ERROR(ReadMessages(j, &req));
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  std::optional<int64_t> max_tokens, max_completion_tokens, top_k, seed, n, min_tokens;
  // Completions: 0 runs the prompt only (to score it, with echo and logprobs).
  FERRY_RETURN_IF_ERROR(
      ReadInt(j, "max_tokens", kind == ApiKind::kCompletion ? 0 : 1, kMaxInt, &max_tokens));
  if (kind == ApiKind::kChat) {
    FERRY_RETURN_IF_ERROR(ReadInt(j, "max_completion_tokens", 1, kMaxInt, &max_completion_tokens));
    if (max_completion_tokens) max_tokens = max_completion_tokens;
  }
  if (max_tokens) req.max_tokens = static_cast<int32_t>(*max_tokens);
  std::optional<double> temperature, top_p;
  FERRY_RETURN_IF_ERROR(ReadFloat(j, "temperature", 0.0, 100.0, false, &temperature));
  FERRY_RETURN_IF_ERROR(ReadFloat(j, "top_p", 0.0, 1.0, true, &top_p));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "top_k", -1, kMaxInt, &top_k));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "seed", std::numeric_limits<int64_t>::min(),
                                std::numeric_limits<int64_t>::max(), &seed));
  std::optional<int64_t> best_of;
  FERRY_RETURN_IF_ERROR(ReadInt(j, "n", 1, kMaxChoicesPerPrompt, &n));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "best_of", 1, kMaxChoicesPerPrompt, &best_of));
  if (n) req.n = static_cast<int32_t>(*n);
  if (best_of && *best_of != req.n) {
    return FieldError("best_of", "is not supported (only best_of equal to n, " +
                                     std::to_string(req.n) + "); got " + std::to_string(*best_of));
  }
  const size_t num_prompts = std::max<size_t>(1, req.prompts.size());
  if (num_prompts * static_cast<size_t>(req.n) > static_cast<size_t>(kMaxChoices)) {
    return FieldError("n", std::to_string(num_prompts) + " prompts x n " + std::to_string(req.n) +
                               " is more than the " + std::to_string(kMaxChoices) +
                               " choices one request may ask for");
  }
  FERRY_RETURN_IF_ERROR(ReadLogprobs(j, kind, &req));
  FERRY_RETURN_IF_ERROR(ReadBool(j, "return_tokens_as_token_ids", &req.return_tokens_as_token_ids));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "min_tokens", 0, kMaxInt, &min_tokens));
  if (temperature) req.params.temperature = static_cast<float>(*temperature);
  if (top_p) req.params.top_p = static_cast<float>(*top_p);
  if (top_k) req.params.top_k = static_cast<int32_t>(*top_k);
  if (seed) req.params.seed = static_cast<uint64_t>(*seed);
  if (min_tokens) req.params.min_tokens = static_cast<int32_t>(*min_tokens);
  if (min_tokens && max_tokens && *min_tokens > *max_tokens) {
    return FieldError("min_tokens", "must not exceed max_tokens (" + std::to_string(*max_tokens) +
                                        "), got " + std::to_string(*min_tokens));
  }
  FERRY_RETURN_IF_ERROR(ReadBool(j, "ignore_eos", &req.params.ignore_eos));
  FERRY_RETURN_IF_ERROR(ReadStop(j, &req.params.stop));
  FERRY_RETURN_IF_ERROR(ReadBool(j, "stream", &req.stream));
  if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return FieldError("stream_options", "must be an object");
    FERRY_RETURN_IF_ERROR(ReadBool(*it, "include_usage", &req.include_usage));
  }
  if (auto it = j.find("kv_transfer_params"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return FieldError("kv_transfer_params", "must be an object or null");
    // Their fields are the KV connector's to parse and check (KvConnector::PrepareRequest).
    req.kv_transfer_params = *it;
  }
  return req;
}

}  // namespace ferry::server
