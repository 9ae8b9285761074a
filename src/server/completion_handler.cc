#include "server/completion_handler.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>

#include "common/deadline.h"
#include "common/log.h"
#include "engine/kv_connector.h"
#include "engine/stream_signal.h"
#include "server/logprobs_json.h"

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

// One choice: an engine request and what its answer needs.
struct Choice {
  int32_t index = 0;            // prompt_index * n + sample_index
  bool first_of_prompt = true;  // sample 0: its prompt counts in usage
  std::string engine_id;
  std::vector<int32_t> prompt_tokens;  // for echo with logprobs
  bool echo = false;
  std::string echo_text;  // prepended to the text (echo)
  std::shared_ptr<engine::RequestStream> stream;
  std::unique_ptr<LogprobsJson> logprobs;  // null when not asked for
  std::optional<RequestTimer> timer;
  bool started = false;  // an output was seen (echo and prompt logprobs go with it)
  bool finished = false;
  std::string text;
  std::string finish_reason;
  Usage usage;
  nlohmann::json kv_transfer_params;  // from the final output
};

// Tokenizes and checks one prompt and fills in max_tokens: the engine request of its
// first sample.
Result<engine::GenerateRequest> PreparePrompt(const HandlerContext& ctx, const OpenAiRequest& req,
                                              const PromptInput* prompt) {
  const engine::Tokenizer& tok = ctx.engine->tokenizer();
  const int64_t max_len = ctx.engine->max_model_len();
  // A text too long to fit whatever it encodes to is refused before tokenizing it.
  auto check_length = [&](const std::string& field, size_t bytes) {
    const size_t per_token = 3 * tok.max_token_bytes();
    if (per_token == 0 || bytes / per_token < static_cast<size_t>(max_len)) return OkStatus();
    return InvalidArgumentError(field + ": this model's maximum context length is " +
                                std::to_string(max_len) + " tokens, and a text of " +
                                std::to_string(bytes) + " bytes is longer than that")
        .WithField(field);
  };
  engine::GenerateRequest g;
  if (req.kind == ApiKind::kChat) {
    auto text = tok.ApplyChatTemplate(req.messages, /*add_generation_prompt=*/true);
    if (!text.ok()) {
      return InvalidArgumentError("messages: " + text.status().message()).WithField("messages");
    }
    FERRY_RETURN_IF_ERROR(check_length("messages", text->size()));
    g.prompt_tokens = tok.Encode(*text);
  } else if (prompt->text) {
    FERRY_RETURN_IF_ERROR(check_length("prompt", prompt->text->size()));
    g.prompt_tokens = tok.EncodePrompt(*prompt->text);
  } else {
    g.prompt_tokens = prompt->tokens;
  }
  const auto n = static_cast<int64_t>(g.prompt_tokens.size());
  if (n >= max_len) {
    return InvalidArgumentError("prompt: this model's maximum context length is " +
                                std::to_string(max_len) + " tokens, but the prompt has " +
                                std::to_string(n) + " tokens")
        .WithField("prompt");
  }
  // Like vLLM: completions default to 16 tokens, chat to whatever the context allows.
  int64_t max_tokens =
      req.max_tokens ? *req.max_tokens : (req.kind == ApiKind::kChat ? max_len - n : 16);
  if (n + max_tokens > max_len) {
    if (req.max_tokens) {
      return InvalidArgumentError("max_tokens: this model's maximum context length is " +
                                  std::to_string(max_len) + " tokens; the prompt has " +
                                  std::to_string(n) + " and " + std::to_string(max_tokens) +
                                  " more were requested")
          .WithField("max_tokens");
    }
    max_tokens = max_len - n;
  }
  g.params = req.params;
  g.params.max_tokens = static_cast<int32_t>(max_tokens);
  if (!g.params.seed && ctx.default_seed) g.params.seed = ctx.default_seed;
  return g;
}

// The request's choices, submitted to the engine (all or none). `signal` is notified on
// every output of any of them.
Result<std::vector<Choice>> SubmitChoices(const HandlerContext& ctx, const OpenAiRequest& req,
                                          const std::string& request_id,
                                          const std::string& client_request_id,
                                          const std::shared_ptr<engine::StreamSignal>& signal) {
  if (!req.model.empty() && req.model != ctx.served_model_name) {
    return NotFoundError("model: the model `" + req.model + "` does not exist; this server has `" +
                         ctx.served_model_name + "`")
        .WithField("model");
  }
  const size_t num_prompts = req.kind == ApiKind::kChat ? 1 : req.prompts.size();
  const size_t num_choices = num_prompts * static_cast<size_t>(req.n);
  if (!req.kv_transfer_params.is_null()) {
    // The KV connector parses and checks them (KvConnector::PrepareRequest); an instance
    // without one refuses a request that needs one rather than serve it half.
    if (AsksForKvTransfer(req.kv_transfer_params)) {
      if (ctx.engine->kv_connector() == nullptr) {
        return FailedPreconditionError(
            "kv_transfer_params: this instance was started without --kv-transfer-config; it "
            "cannot take part in disaggregated serving")
            .WithField("kv_transfer_params");
      }
      // One transfer carries one prompt's KV, and a scored prompt is computed whole.
      if (num_choices > 1) {
        return InvalidArgumentError(
            "kv_transfer_params: a KV transfer serves one choice; n > 1 and lists of prompts "
            "cannot be combined with disaggregated prefill/decode")
            .WithField("kv_transfer_params");
      }
      if (req.params.prompt_logprobs >= 0) {
        return InvalidArgumentError(
            "kv_transfer_params: echo with logprobs scores the prompt on one instance; it "
            "cannot be combined with disaggregated prefill/decode")
            .WithField("kv_transfer_params");
      }
    }
  }
  std::vector<Choice> choices;
  choices.reserve(num_choices);
  for (size_t p = 0; p < num_prompts; ++p) {
    const PromptInput* prompt = req.kind == ApiKind::kChat ? nullptr : &req.prompts[p];
    FERRY_ASSIGN_OR_RETURN(engine::GenerateRequest first, PreparePrompt(ctx, req, prompt));
    std::string echo_text;
    if (req.echo) {
      echo_text =
          prompt->text ? *prompt->text : ctx.engine->tokenizer().Decode(first.prompt_tokens, false);
    }
    for (int32_t s = 0; s < req.n; ++s) {
      Choice c;
      c.index = static_cast<int32_t>(p) * req.n + s;
      c.first_of_prompt = s == 0;
      c.engine_id = request_id + "." + std::to_string(c.index);
      c.prompt_tokens = first.prompt_tokens;
      c.echo = req.echo;
      c.echo_text = echo_text;
      if (req.params.logprobs >= 0) {
        c.logprobs = std::make_unique<LogprobsJson>(req.kind, &ctx.engine->tokenizer(),
                                                    req.return_tokens_as_token_ids);
      }
      c.timer.emplace(ctx.metrics);
      engine::GenerateRequest g = first;
      g.request_id = c.engine_id;
      g.signal = signal;
      // Independent samples: vLLM's seed + sample index when there is a seed.
      if (g.params.seed) g.params.seed = *g.params.seed + static_cast<uint64_t>(s);
      if (!req.kv_transfer_params.is_null()) {
        // The connector falls back to the request id when a proxy sends no transfer_id
        // (vLLM's older mooncake proxies give both halves the same X-Request-Id); the
        // server's value replaces any a client wrote. A header is not always UTF-8: bad
        // bytes become U+FFFD (which the connector refuses in a transfer id), not a throw.
        nlohmann::json kv = req.kv_transfer_params;
        kv[engine::kKvRequestIdKey] = client_request_id;
        g.kv_transfer_params = kv.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      auto stream = ctx.engine->Submit(std::move(g));
      if (!stream.ok()) {
        for (const Choice& done : choices) ctx.engine->Abort(done.engine_id);
        return stream.status();
      }
      c.stream = std::move(stream).value();
      choices.push_back(std::move(c));
    }
  }
  return choices;
}

// Applies one engine output to its choice; returns the chunk's new text (echo first).
std::string ApplyOutput(Choice& c, const RequestOutput& o) {
  c.timer->OnOutput(o);
  std::string text;
  if (!c.started) {
    c.started = true;
    text = c.echo_text;
    if (c.logprobs && c.echo) c.logprobs->AddPrompt(c.prompt_tokens, o.prompt_logprobs);
  }
  text += o.text;
  if (c.logprobs) c.logprobs->Add(o.logprobs);
  c.text += text;
  if (o.finished) {
    c.finished = true;
    c.finish_reason = o.finish_reason;
    c.usage = {o.prompt_tokens, o.completion_tokens, o.cached_tokens};
    if (o.kv_transfer_params) {
      c.kv_transfer_params =
          nlohmann::json::parse(*o.kv_transfer_params, nullptr, /*allow_exceptions=*/false);
      if (c.kv_transfer_params.is_discarded()) c.kv_transfer_params = nullptr;
    }
  }
  return text;
}

// Usage over all choices: each prompt's tokens once, every choice's completion tokens.
Usage TotalUsage(const std::vector<Choice>& choices) {
  Usage total;
  for (const Choice& c : choices) {
    if (c.first_of_prompt) {
      total.prompt_tokens += c.usage.prompt_tokens;
      total.cached_tokens += c.usage.cached_tokens;
    }
    total.completion_tokens += c.usage.completion_tokens;
  }
  return total;
}

// Takes one available output of some unfinished choice without waiting. Returns the
// choice's position, or -1 when none has output.
int TakeAny(std::vector<Choice>& choices, RequestOutput* out) {
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].finished) continue;
    // kClosed cannot happen here (finished is set on taking the final output) and is skipped
    // like kTimedOut.
    if (choices[i].stream->Next(Deadline::In(std::chrono::milliseconds(0)), out) ==
        engine::RequestStream::Poll::kOutput) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void AbortUnfinished(const HandlerContext& ctx, const std::vector<Choice>& choices) {
  for (const Choice& c : choices) {
    if (!c.finished) ctx.engine->Abort(c.engine_id);
  }
}

class StreamImpl : public SseStream {
 public:
  StreamImpl(const HandlerContext& ctx, ResponseContext rctx, bool include_usage,
             std::vector<Choice> choices, std::shared_ptr<engine::StreamSignal> signal)
      : ctx_(ctx),
        rctx_(std::move(rctx)),
        include_usage_(include_usage),
        choices_(std::move(choices)),
        signal_(std::move(signal)),
        deadline_(Deadline::In(ctx.request_timeout)) {}

  bool Pump(std::chrono::milliseconds slice, std::string* out) override {
    out->clear();
    if (done_) return false;
    if (rctx_.kind == ApiKind::kChat && !sent_role_) {
      sent_role_ = true;
      for (const Choice& c : choices_) {
        *out += SseEvent(
            StreamChunk(rctx_, "", std::nullopt, /*role_only=*/true, include_usage_, c.index));
      }
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
    const uint64_t seen = signal_->count();
    RequestOutput o;
    int i = TakeAny(choices_, &o);
    if (i < 0) {
      signal_->WaitChanged(seen, Deadline::Min(Deadline::In(slice), deadline_));
      return true;  // what arrived is taken by the next call
    }
    for (; i >= 0; i = TakeAny(choices_, &o)) {
      Choice& c = choices_[static_cast<size_t>(i)];
      if (o.finished && !o.error.ok()) {
        c.finished = true;
        AbortUnfinished(ctx_, choices_);
        *out += SseEvent(ErrorJson(HttpStatusFor(o.error), o.error.message(), "")) + kSseDone;
        done_ = true;
        return false;
      }
      const std::string text = ApplyOutput(c, o);
      nlohmann::json lp = c.logprobs ? c.logprobs->Take() : nlohmann::json(nullptr);
      if (o.finished) {
        *out +=
            SseEvent(StreamChunk(rctx_, text, o.finish_reason, false, include_usage_, c.index, lp));
      } else if (!text.empty() || !o.logprobs.empty()) {
        *out +=
            SseEvent(StreamChunk(rctx_, text, std::nullopt, false, include_usage_, c.index, lp));
      }
    }
    if (std::all_of(choices_.begin(), choices_.end(), [](const Choice& c) { return c.finished; })) {
      if (include_usage_) *out += SseEvent(UsageChunk(rctx_, TotalUsage(choices_)));
      *out += kSseDone;
      done_ = true;
      return false;
    }
    return true;
  }

  void Cancel() override {
    if (cancelled_) return;
    cancelled_ = true;
    for (const Choice& c : choices_) {
      if (c.finished || c.stream->finished()) continue;
      ctx_.engine->Abort(c.engine_id);
      ctx_.metrics->ObserveFinished("abort", static_cast<double>(NowNanos() - arrival_ns_) * 1e-9);
    }
  }

 private:
  const HandlerContext& ctx_;
  const ResponseContext rctx_;
  const bool include_usage_;
  std::vector<Choice> choices_;
  const std::shared_ptr<engine::StreamSignal> signal_;
  const Deadline deadline_;
  const int64_t arrival_ns_ = NowNanos();
  bool sent_role_ = false;
  bool done_ = false;
  bool cancelled_ = false;
};

}  // namespace

Reply ErrorReply(const Status& status) {
  const int code = HttpStatusFor(status);
  return {code, Dump(ErrorJson(code, status.message(), status.field()))};
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
  const OpenAiRequest& req = *parsed;
  auto signal = std::make_shared<engine::StreamSignal>();
  auto submitted = SubmitChoices(ctx, req, request_id, client_request_id, signal);
  if (!submitted.ok()) {
    *reply = ErrorReply(submitted.status());
    return nullptr;
  }
  std::vector<Choice> choices = std::move(submitted).value();
  ResponseContext rctx{kind, (kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + client_request_id,
                       ctx.served_model_name, NowUnixSeconds()};
  if (req.stream) {
    return std::make_unique<StreamImpl>(ctx, std::move(rctx), req.include_usage, std::move(choices),
                                        std::move(signal));
  }
  const int64_t arrival_ns = NowNanos();
  const Deadline deadline = Deadline::In(ctx.request_timeout);
  size_t num_finished = 0;
  while (num_finished < choices.size()) {
    if (deadline.Expired() || ctx.stopping->load()) {
      AbortUnfinished(ctx, choices);
      *reply = ErrorReply(
          UnavailableError(deadline.Expired() ? "request timed out" : "server stopping"));
      return nullptr;
    }
    if (client_gone && client_gone()) {
      AbortUnfinished(ctx, choices);
      ctx.metrics->ObserveFinished("abort", static_cast<double>(NowNanos() - arrival_ns) * 1e-9);
      *reply = ErrorReply(AbortedError("the client closed the connection"));
      return nullptr;
    }
    const uint64_t seen = signal->count();
    RequestOutput o;
    const int i = TakeAny(choices, &o);
    if (i < 0) {
      signal->WaitChanged(seen,
                          Deadline::Min(Deadline::In(std::chrono::milliseconds(200)), deadline));
      continue;
    }
    if (o.finished && !o.error.ok()) {
      choices[static_cast<size_t>(i)].finished = true;
      AbortUnfinished(ctx, choices);
      *reply = ErrorReply(o.error);
      return nullptr;
    }
    ApplyOutput(choices[static_cast<size_t>(i)], o);
    if (o.finished) ++num_finished;
  }
  std::vector<ChoiceOutput> out;
  out.reserve(choices.size());
  for (Choice& c : choices) {
    out.push_back({c.index, std::move(c.text), c.finish_reason,
                   c.logprobs ? c.logprobs->Take() : nlohmann::json(nullptr)});
  }
  // One choice when a KV transfer was asked for (SubmitChoices).
  const nlohmann::json kv = choices.size() == 1 ? choices[0].kv_transfer_params : nullptr;
  *reply = {200, Dump(FullResponse(rctx, out, TotalUsage(choices), kv))};
  return nullptr;
}

}  // namespace ferry::server
