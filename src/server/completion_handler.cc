#include "server/completion_handler.h"

#include <atomic>

#include "common/deadline.h"
#include "common/log.h"
#include "connector/kv_transfer_params.h"

namespace ferry::server {
namespace {

using engine::RequestOutput;

// True when kv_transfer_params ask for a KV transfer (do_remote_decode or
// do_remote_prefill set).
bool AsksForKvTransfer(const nlohmann::json& params) {
  if (!params.is_object()) return false;
  for (const char* key : {"do_remote_decode", "do_remote_prefill"}) {
    auto it = params.find(key);
    if (it != params.end() && it->is_boolean() && it->get<bool>()) return true;
  }
  return false;
}

// Builds the engine request: model check, chat template, tokenisation, max_tokens.
Result<engine::GenerateRequest> Prepare(const HandlerContext& ctx, OpenAiRequest& req,
                                        const std::string& request_id) {
  if (!req.model.empty() && req.model != ctx.served_model_name) {
    return NotFoundError("model: the model `" + req.model + "` does not exist; this server has `" +
                         ctx.served_model_name + "`");
  }
  const engine::Tokenizer& tok = ctx.engine->tokenizer();
  const int64_t max_len = ctx.engine->max_model_len();
  // A text too long to fit whatever it encodes to is refused before tokenizing it.
  auto check_length = [&](const std::string& field, size_t bytes) {
    const size_t per_token = 3 * tok.max_token_bytes();
    if (per_token == 0 || bytes / per_token < static_cast<size_t>(max_len)) return OkStatus();
    return InvalidArgumentError(field + ": this model's maximum context length is " +
                                std::to_string(max_len) + " tokens, and a text of " +
                                std::to_string(bytes) + " bytes is longer than that");
  };
  engine::GenerateRequest g;
  g.request_id = request_id;
  if (req.kind == ApiKind::kChat) {
    auto text = tok.ApplyChatTemplate(req.messages, /*add_generation_prompt=*/true);
    if (!text.ok()) return InvalidArgumentError("messages: " + text.status().message());
    FERRY_RETURN_IF_ERROR(check_length("messages", text->size()));
    g.prompt_tokens = tok.Encode(*text);
  } else if (req.prompt_text) {
    FERRY_RETURN_IF_ERROR(check_length("prompt", req.prompt_text->size()));
    g.prompt_tokens = tok.EncodePrompt(*req.prompt_text);
  } else {
    g.prompt_tokens = req.prompt_tokens;
  }
  const auto n = static_cast<int64_t>(g.prompt_tokens.size());
  if (n >= max_len) {
    return InvalidArgumentError("prompt: this model's maximum context length is " +
                                std::to_string(max_len) + " tokens, but the prompt has " +
                                std::to_string(n) + " tokens");
  }
  // Like vLLM: completions default to 16 tokens, chat to whatever the context allows.
  int64_t max_tokens =
      req.max_tokens ? *req.max_tokens : (req.kind == ApiKind::kChat ? max_len - n : 16);
  if (n + max_tokens > max_len) {
    if (req.max_tokens) {
      return InvalidArgumentError("max_tokens: this model's maximum context length is " +
                                  std::to_string(max_len) + " tokens; the prompt has " +
                                  std::to_string(n) + " and " + std::to_string(max_tokens) +
                                  " more were requested");
    }
    max_tokens = max_len - n;
  }
  g.params = req.params;
  g.params.max_tokens = static_cast<int32_t>(max_tokens);
  return g;
}

class StreamImpl : public SseStream {
 public:
  StreamImpl(const HandlerContext& ctx, ResponseContext rctx, bool include_usage,
             std::string request_id, std::shared_ptr<engine::RequestStream> stream)
      : ctx_(ctx),
        rctx_(std::move(rctx)),
        include_usage_(include_usage),
        request_id_(std::move(request_id)),
        stream_(std::move(stream)),
        timer_(ctx.metrics),
        deadline_(Deadline::In(ctx.request_timeout)) {}

  bool Pump(std::chrono::milliseconds slice, std::string* out) override {
    out->clear();
    if (done_) return false;
    if (rctx_.kind == ApiKind::kChat && !sent_role_) {
      sent_role_ = true;
      *out = SseEvent(StreamChunk(rctx_, "", std::nullopt, /*role_only=*/true, include_usage_));
      return true;
    }
    if (deadline_.Expired() || ctx_.stopping->load()) {
      Cancel();
      *out = SseEvent(ErrorJson(503, deadline_.Expired() ? "request timed out" : "server stopping",
                                "")) +
             kSseDone;
      done_ = true;
      return false;
    }
    auto next = stream_->Next(Deadline::Min(Deadline::In(slice), deadline_));
    if (!next.ok()) return true;  // nothing yet
    const RequestOutput& o = *next;
    timer_.OnOutput(o);
    if (!o.finished) {
      if (!o.text.empty()) {
        *out = SseEvent(StreamChunk(rctx_, o.text, std::nullopt, false, include_usage_));
      }
      return true;
    }
    done_ = true;
    if (!o.error.ok()) {
      *out = SseEvent(ErrorJson(HttpStatusFor(o.error), o.error.message(), ""));
    } else {
      *out = SseEvent(StreamChunk(rctx_, o.text, o.finish_reason, false, include_usage_));
      if (include_usage_) {
        *out +=
            SseEvent(UsageChunk(rctx_, {o.prompt_tokens, o.completion_tokens, o.cached_tokens}));
      }
    }
    *out += kSseDone;
    return false;
  }

  void Cancel() override {
    if (cancelled_ || stream_->finished()) return;
    cancelled_ = true;
    ctx_.engine->Abort(request_id_);
    ctx_.metrics->ObserveFinished("abort", static_cast<double>(NowNanos() - arrival_ns_) * 1e-9);
  }

 private:
  const HandlerContext& ctx_;
  const ResponseContext rctx_;
  const bool include_usage_;
  const std::string request_id_;
  std::shared_ptr<engine::RequestStream> stream_;
  RequestTimer timer_;
  const Deadline deadline_;
  const int64_t arrival_ns_ = NowNanos();
  bool sent_role_ = false;
  bool done_ = false;
  bool cancelled_ = false;
};

}  // namespace

Reply ErrorReply(const Status& status) {
  const int code = HttpStatusFor(status);
  return {code, Dump(ErrorJson(code, status.message(), ErrorParam(status)))};
}

std::unique_ptr<SseStream> HandleCompletion(const HandlerContext& ctx, ApiKind kind,
                                            const std::string& body,
                                            const std::string& client_request_id,
                                            const std::function<bool()>& client_gone,
                                            Reply* reply) {
  // Engine (and connector) ids are unique even when clients reuse an X-Request-Id: a
  // duplicate used to take over the first request's connector state and leave it waiting
  // for the abort timeout with its KV held. Responses keep the client's id.
  static std::atomic<uint64_t> next_engine_seq{0};
  const std::string request_id = client_request_id + "." + std::to_string(next_engine_seq++);
  auto parsed = ParseOpenAiRequest(body, kind);
  if (!parsed.ok()) {
    *reply = ErrorReply(parsed.status());
    return nullptr;
  }
  OpenAiRequest& req = *parsed;
  auto prepared = Prepare(ctx, req, request_id);
  if (!prepared.ok()) {
    *reply = ErrorReply(prepared.status());
    return nullptr;
  }
  if (!req.kv_transfer_params.is_null()) {
    // The KV connector parses and checks them (KvConnector::PrepareRequest); an instance
    // without one refuses a request that needs one rather than serve it half.
    if (ctx.engine->kv_connector() == nullptr && AsksForKvTransfer(req.kv_transfer_params)) {
      *reply = ErrorReply(FailedPreconditionError(
          "kv_transfer_params: this instance was started without --kv-transfer-config; it "
          "cannot take part in disaggregated serving"));
      return nullptr;
    }
    // The connector falls back to the request id when a proxy sends no transfer_id (vLLM's
    // older mooncake proxies give both halves the same X-Request-Id); the server's value
    // replaces any a client wrote. A header is not always UTF-8: bad bytes become U+FFFD
    // (which the connector refuses in a transfer id) instead of throwing.
    req.kv_transfer_params[connector::kRequestIdKey] = client_request_id;
    prepared->kv_transfer_params =
        req.kv_transfer_params.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  auto stream = ctx.engine->Submit(std::move(prepared).value());
  if (!stream.ok()) {
    *reply = ErrorReply(stream.status());
    return nullptr;
  }
  ResponseContext rctx{kind, (kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + client_request_id,
                       ctx.served_model_name, NowUnixSeconds()};
  if (req.stream) {
    return std::make_unique<StreamImpl>(ctx, std::move(rctx), req.include_usage, request_id,
                                        std::move(stream).value());
  }
  RequestTimer timer(ctx.metrics);
  const int64_t arrival_ns = NowNanos();
  const Deadline deadline = Deadline::In(ctx.request_timeout);
  std::string text;
  while (true) {
    if (deadline.Expired() || ctx.stopping->load()) {
      ctx.engine->Abort(request_id);
      *reply = ErrorReply(
          UnavailableError(deadline.Expired() ? "request timed out" : "server stopping"));
      return nullptr;
    }
    if (client_gone && client_gone()) {
      ctx.engine->Abort(request_id);
      ctx.metrics->ObserveFinished("abort", static_cast<double>(NowNanos() - arrival_ns) * 1e-9);
      *reply = ErrorReply(AbortedError("the client closed the connection"));
      return nullptr;
    }
    auto out =
        (*stream)->Next(Deadline::Min(Deadline::In(std::chrono::milliseconds(200)), deadline));
    if (!out.ok()) continue;
    timer.OnOutput(*out);
    text += out->text;
    if (!out->finished) continue;
    if (!out->error.ok()) {
      *reply = ErrorReply(out->error);
      return nullptr;
    }
    nlohmann::json kv = nullptr;
    if (out->kv_transfer_params) {
      kv = nlohmann::json::parse(*out->kv_transfer_params, nullptr, /*allow_exceptions=*/false);
      if (kv.is_discarded()) kv = nullptr;
    }
    *reply = {200, Dump(FullResponse(
                       rctx, text, out->finish_reason,
                       {out->prompt_tokens, out->completion_tokens, out->cached_tokens}, kv))};
    return nullptr;
  }
}

}  // namespace ferry::server
