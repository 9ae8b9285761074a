// ProxyServer: the only endpoint clients talk to in a disaggregated deployment.
//
// For each completion request it picks a prefill and a decode instance (round robin over
// healthy ones), sends both their rewritten requests at the same time (request_rewrite.h),
// and relays the decoder's answer: SSE as text/event-stream, chunk by chunk. A decoder
// error becomes the same HTTP error for the client (not a cut 200 stream); no healthy
// instance => 503.
//
//   FERRY_ASSIGN_OR_RETURN(auto proxy, ProxyServer::Create(options));
//   proxy->Wait();   // until Stop() (e.g. from a signal handler thread)
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models (from a
// decoder), GET /health (200 when at least one prefill and one decode are healthy),
// GET /status (backends as JSON), GET /metrics (Prometheus text).
//
// The client-facing HTTP layer is http::HttpServer (src/http) with options.http_threads
// workers and options.http_limits: slow or idle clients hold a connection slot, never a
// worker; its own errors (408, 413, 503 when full, ...) are OpenAI-shaped like the rest.
// Thread safety: Stop() may be called from any thread.
#pragma once

#include <memory>

#include "ferry/status.h"
#include "proxy/proxy_options.h"

namespace ferry::proxy {

class ProxyServer {
 public:
  // Binds options.host:options.port, probes the backends once, starts serving.
  // Errors: InvalidArgument (no prefill or no decode), AlreadyExists (port taken).
  static Result<std::unique_ptr<ProxyServer>> Create(const ProxyOptions& options);
  virtual ~ProxyServer() = default;  // stops and joins everything

  virtual uint16_t port() const = 0;
  // Blocks until Stop() has finished.
  virtual void Wait() = 0;
  // Stops accepting, lets running relays finish within the HTTP layer's stop grace and
  // joins its threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace ferry::proxy
