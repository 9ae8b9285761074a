// OpenAiServer: the OpenAI-compatible HTTP surface of `ferry serve` over an LlmEngine.
//
//   OpenAiServerOptions opts{.host = "127.0.0.1", .port = 8000, .served_model_name = "tiny"};
//   FERRY_ASSIGN_OR_RETURN(auto server, OpenAiServer::Create(opts, engine.get()));
//   FERRY_RETURN_IF_ERROR(server->Start());   // binds, then serves on its own thread
//   ...
//   server->Stop();                           // also done by the destructor
//
// Routes: POST /v1/completions, POST /v1/chat/completions (JSON or SSE when "stream"),
// GET /v1/models, GET /health (200 while the engine thread is alive, else 503),
// GET /metrics (Prometheus text); with an api_key the /v1/* routes answer 401 without
// "Authorization: Bearer <key>". X-Request-Id names the response (cmpl-<id>) when given and
// is always echoed; engine request ids stay unique when clients reuse one. Errors are {"error":
// {message, type, param, code}} with 400 (bad body, bad values, prompt too long), 401 (no or
// a wrong API key), 404 (unknown model), 503 (engine down); the HTTP layer's own errors (408, 413,
// 431, 503 when full, ...) have the same shape. A client that goes away, streaming or waiting for a
// whole answer, gets its request aborted, which frees its KV blocks.
//
// The HTTP layer is http::HttpServer (src/http): one loop thread reads requests under the
// limits of `http_limits` (docs/http_server.md), `http_threads` workers run the handlers.
// A slow or idle client holds a connection slot, never a worker.
//
// Thread safety: Start/Stop from one thread; handlers run on the HTTP worker threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/llm_engine.h"
#include "ferry/status.h"
#include "http/http_server_options.h"
#include "server/completion_handler.h"
#include "server/openai_request.h"
#include "server/server_metrics.h"

namespace ferry::http {
class HttpServer;
struct Request;
struct Response;
}  // namespace ferry::http

namespace ferry::server {

struct OpenAiServerOptions {
  std::string host = "127.0.0.1";  // Default: 127.0.0.1.
  int port = 8000;                 // 0 picks a free port (see port()). Default: 8000.
  std::string served_model_name;   // Required: the name clients pass as "model".
  // Requests handled at once (each waits for the engine on its own thread); more wait in
  // the HTTP layer's queue (http_limits.max_queued_requests). Default: 64.
  int http_threads = 64;
  // Limits and deadlines of the HTTP layer. Default: the HttpLimits defaults with
  // max_body_bytes 32 MiB.
  http::HttpLimits http_limits = {.max_body_bytes = 32 << 20};
  std::chrono::seconds request_timeout{600};  // A request is aborted after this. Default: 600 s.
  // More Prometheus text appended to GET /metrics (after the engine's KV connector's).
  // Default: none.
  std::function<std::string()> extra_metrics;
  // When set, every /v1/* request needs "Authorization: Bearer <api_key>" (else 401);
  // /health and /metrics stay open (`--api-key`, VLLM_API_KEY). Default: "" (open).
  std::string api_key;
  // The seed of sampling requests that name none (`--seed`). Default: none (random).
  std::optional<uint64_t> default_seed;
};

class OpenAiServer {
 public:
  // `engine` must outlive the server. Errors: InvalidArgument (no model name, bad threads,
  // port or limits).
  static Result<std::unique_ptr<OpenAiServer>> Create(const OpenAiServerOptions& options,
                                                      engine::LlmEngine* engine);
  ~OpenAiServer();
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  // Binds host:port and starts serving. Errors: Unavailable (cannot bind),
  // FailedPrecondition (already started).
  Status Start();
  // Stops accepting, ends in-flight requests (aborting them) and joins. Idempotent.
  void Stop();
  int port() const { return bound_port_; }
  ServerMetrics& metrics() { return metrics_; }

 private:
  OpenAiServer(const OpenAiServerOptions& options, engine::LlmEngine* engine);
  void InstallRoutes();
  // False (with a 401 in `res`) when an API key is set and `req` does not carry it.
  bool Authorized(const http::Request& req, http::Response& res) const;

  const OpenAiServerOptions options_;
  engine::LlmEngine* const engine_;
  ServerMetrics metrics_;
  HandlerContext handler_ctx_;  // shared by every handler; outlives them
  std::unique_ptr<http::HttpServer> http_;
  std::atomic<bool> stopping_{false};
  int bound_port_ = 0;
};

}  // namespace ferry::server
