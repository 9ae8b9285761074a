// CompletionHandler: turns a parsed OpenAI request into an engine request and its answer
// (one JSON body or an SSE stream). Used by OpenAiServer; knows HTTP only through the
// small shapes below: a Reply (status, body, content type) for a whole answer, or an
// SseStream whose Pump returns the next bytes of a streamed one (the server writes them
// out and calls Cancel when the client leaves).
//
// Thread safety: HandleCompletion and ErrorReply are thread-safe (each call works on its
// own request); one SseStream is pumped by one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/llm_engine.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/server_metrics.h"

namespace ferry::server {

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// A started SSE stream: call Pump until it returns false. Each call waits at most
// `slice` for engine output and returns the bytes to send ("" when there is nothing yet).
class SseStream {
 public:
  virtual ~SseStream() = default;
  // Returns false once the stream is complete (the last bytes are in *out).
  virtual bool Pump(std::chrono::milliseconds slice, std::string* out) = 0;
  // The client went away or the server stops: abort the request if it still runs.
  virtual void Cancel() = 0;
};

struct HandlerContext {
  engine::LlmEngine* engine = nullptr;
  ServerMetrics* metrics = nullptr;
  std::string served_model_name;
  std::chrono::seconds request_timeout{600};
  const std::atomic<bool>* stopping = nullptr;
  // The seed of sampling requests that name none (`ferry serve --seed`); none: random.
  std::optional<uint64_t> default_seed;
};

// Runs a request: one engine request per choice (n per prompt; the choice index is
// prompt_index * n + sample_index, sample s seeded with seed + s when there is a seed).
// For a non-streaming request (or any error before streaming starts) sets
// *reply and returns null; for a streaming one returns the stream to pump. While it waits
// for a non-streaming answer it polls `client_gone` (may be empty) between engine outputs
// and at least every 200 ms: once true, the engine request is aborted (its KV blocks
// freed) and *reply is an Aborted error (500) that nobody will read.
// `client_request_id` (X-Request-Id or a generated one) names the response; the engine
// request gets a unique id made from it, so clients may reuse ids.
std::unique_ptr<SseStream> HandleCompletion(const HandlerContext& ctx, ApiKind kind,
                                            const std::string& body,
                                            const std::string& client_request_id,
                                            const std::function<bool()>& client_gone, Reply* reply);

// An error reply from a Status (message, param and HTTP status derived from it).
Reply ErrorReply(const Status& status);

}  // namespace ferry::server
