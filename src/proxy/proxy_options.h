// Options of `ferry proxy`, the disaggregation proxy (protocol.md, "Request lifecycle").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "http/http_server_options.h"

namespace ferry::proxy {

// One instance behind the proxy, parsed from a base URL such as "http://10.0.0.2:8010".
struct Backend {
  std::string url;              // as given, without a trailing slash
  std::string host;             // "10.0.0.2"
  uint16_t port = 0;            // 8010
  uint16_t bootstrap_port = 0;  // prefill only: its bootstrap server (default 8998)
};

struct ProxyOptions {
  std::string host = "127.0.0.1";  // Default: loopback only, like the reference.
  uint16_t port = 8000;            // Default: 8000.
  std::vector<Backend> prefill;    // Round robin over the healthy ones.
  std::vector<Backend> decode;     // Round robin over the healthy ones.
  // How often each instance's /health is polled. Default: 2 s.
  std::chrono::milliseconds health_interval{2000};
  // Deadline of one health or bootstrap probe, and of connecting to a backend. Default: 2 s.
  std::chrono::milliseconds probe_timeout{2000};
  // Deadline for a backend to answer a request (status line, and each read of the body
  // after it). Default: 600 s.
  std::chrono::milliseconds request_timeout{600000};
  // The deployment's shared secret: decode requests carry ferry_proxy_auth (a tag over the
  // bootstrap address they name), and bootstrap probes are signed. Default: "" (none).
  std::string secret;
  // When set, clients must send "Authorization: Bearer <api_key>" on /v1/* (else 401), and
  // the proxy sends the same header to the instances (started with the same --api-key).
  // /health, /status and /metrics stay open. Default: "" (open, nothing forwarded).
  std::string api_key;
  // Client requests handled at once (each holds its thread while it relays). Default: 128.
  int http_threads = 128;
  // Limits and deadlines of the client-facing HTTP layer (docs/http_server.md). Default:
  // the HttpLimits defaults with max_body_bytes 32 MiB.
  http::HttpLimits http_limits = {.max_body_bytes = 32 << 20};
};

// Parses "http://host:port" (path ignored, https rejected). Errors: InvalidArgument.
Result<Backend> ParseBackendUrl(const std::string& url);

}  // namespace ferry::proxy
