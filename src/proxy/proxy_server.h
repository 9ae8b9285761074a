// ProxyServer: the only endpoint clients talk to in a disaggregated deployment.
//
// For each completion request it picks a prefill and a decode instance (round robin over
// healthy ones), sends both their rewritten requests at the same time (request_rewrite.h),
// and relays the decoder's answer: SSE as text/event-stream, chunk by chunk. A decoder
// error becomes the same HTTP error for the client (not a cut 200 stream). A request one KV
// transfer cannot serve (NeedsOneInstance: n > 1, several prompts, prompt scoring) goes
// whole to one decode instance (a prefill one when no decoder is healthy). With an API key
// clients must send it on /v1/*, and the proxy sends it to the instances.
//
// It stays up when parts fail:
// - no healthy prefill: the request goes whole to a decode instance (plain, no
//   kv_transfer_params); no healthy decode: whole to a prefill instance
//   (ferry_proxy_degraded_total{mode}); nothing healthy: 503;
// - a failure before the client got anything (a refused or dropped connection, a 5xx, an
//   instance whose health checks fail while the request waits) is retried once elsewhere,
//   leaving out the instance that failed (the prefill, when its half failed);
// - an instance that stops answering mid-stream ends the stream with an in-band error.
// With a secret, decode requests carry ferry_proxy_auth and bootstrap probes are signed.
//
//   FERRY_ASSIGN_OR_RETURN(auto proxy, ProxyServer::Create(options));
//   proxy->Wait();   // until Stop() (e.g. from a signal handler thread)
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models (from a
// decoder), GET /health (200 while any instance is healthy;
// its "mode" is disaggregated, decode_only, prefill_only or down), GET /status (backends as
// JSON), GET /metrics (Prometheus text).
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
