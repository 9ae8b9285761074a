// Options of HttpServer (http_server.h): its limits, deadlines, thread count and the
// shape of the error bodies it writes itself. docs/http_server.md lists what each limit
// answers when it is hit.
//
//   http::HttpServerOptions options;
//   options.name = "bootstrap";
//   options.worker_threads = 8;
//   options.limits.max_body_bytes = 64 << 10;
//   options.error_body = [](int status, std::string_view message) {
//     return http::ErrorBody{nlohmann::json{{"error", message}}.dump(), "application/json"};
//   };
//
// Servers that embed HttpServer (serve, proxy, bootstrap, metadata) expose an HttpLimits
// in their own options, with their own max_body_bytes default.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace ferry::http {

struct HttpLimits {
  // Open connections in all; the next one is accepted, answered 503 and closed.
  // Default: 4096.
  int max_connections = 4096;
  // Open connections from one remote IP address; beyond it, 503 and close. Default: 512.
  int max_connections_per_client = 512;
  // Complete requests waiting for a free worker; beyond it, 503 and close. Default: 1024.
  int max_queued_requests = 1024;
  // Request line plus headers (up to the blank line); beyond it, 431. Default: 64 KiB.
  size_t max_header_bytes = 64 << 10;
  // Header fields of one request; beyond it, 431. Default: 100.
  int max_headers = 100;
  // Request target (path and query); beyond it, 414. Default: 8 KiB.
  size_t max_uri_bytes = 8 << 10;
  // Decoded body; a larger Content-Length is answered 413 before any of the body is read
  // (a chunked body as soon as it grows past the limit). Default: 1 MiB.
  size_t max_body_bytes = 1 << 20;
  // Requests served on one keep-alive connection before it is closed. Default: 10000.
  int max_requests_per_connection = 10000;
  // From accept (or from the first byte of a keep-alive connection's next request) to the
  // blank line that ends the headers; then 408 and close. Default: 10 s.
  std::chrono::milliseconds header_timeout{10'000};
  // From the end of the headers to the end of the body; then 408 and close. Default: 60 s.
  std::chrono::milliseconds body_timeout{60'000};
  // A keep-alive connection with no byte of a next request is closed silently after
  // this. Default: 30 s.
  std::chrono::milliseconds idle_timeout{30'000};
  // One write (a whole non-streamed response, or one streamed chunk) must be taken by the
  // client within this, or the connection is closed. Default: 10 s.
  std::chrono::milliseconds write_timeout{10'000};
};

// An error body the server writes itself (4xx/5xx it answers without a handler).
struct ErrorBody {
  std::string body;
  std::string content_type;
};

struct HttpServerOptions {
  // Names the threads ("<name>-loop", "<name>-worker") and log lines. Default: "http".
  std::string name = "http";
  // Handler threads; a handler blocks one for as long as it runs. Default: 8.
  int worker_threads = 8;
  HttpLimits limits;  // Default: the HttpLimits defaults above.
  // How long Stop() lets running handlers finish before it shuts their sockets down.
  // Default: 2 s.
  std::chrono::milliseconds stop_grace{2000};
  // Builds the body of the errors the server answers itself (400, 404, 405, 408, 413,
  // 414, 417, 431, 500, 501, 503, 505) from the status and a message that says what to fix.
  // Default (empty): the message as text/plain.
  std::function<ErrorBody(int status, std::string_view message)> error_body;
};

}  // namespace ferry::http
