// Puts responses on the wire: handler responses from a worker thread (blocking writes
// bounded by write_timeout), and the server's own error responses (built here, sent by
// the loop without blocking).
//
//   std::string bytes = internal::ErrorResponse(options, 413, "body too large", {});
//   bool reusable = internal::WriteResponse(fd, response, context);
//
// Thread safety: plain functions; the caller owns the socket.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_response.h"
#include "http/http_server_options.h"

namespace ferry::http::internal {

// The status line and headers of `res` with the server's framing headers: Content-Length
// `content_length`, or chunked when `chunked`, or neither when content_length is SIZE_MAX
// (a body that ends with the connection); then Connection: close unless `keep_alive`
// (keep-alive spelled out for HTTP/1.0 clients). 1xx, 204 and 304 get no Content-Length.
std::string ResponseHead(const Response& res, bool chunked, size_t content_length, bool keep_alive,
                         int http_minor);

// A complete error response built with options.error_body (text/plain by default), with
// `extra_headers` (e.g. Allow) and Connection: close.
std::string ErrorResponse(const HttpServerOptions& options, int status, std::string_view message,
                          const std::vector<std::pair<std::string, std::string>>& extra_headers);

struct WriteContext {
  int http_minor = 1;
  bool keep_alive = true;  // the connection may be reused after this response
  std::chrono::milliseconds write_timeout{10'000};
  const std::atomic<bool>* stopping = nullptr;
  std::string server_name;  // for log lines
};

// Writes `res` (its stream producer runs here, once). Returns true when the whole
// response is on the wire and the connection may serve another request (ctx.keep_alive,
// no "Connection: close" from the handler, not a raw HTTP/1.0 stream). An exception from
// the producer is logged and ends the response (false).
bool WriteResponse(int fd, const Response& res, const WriteContext& ctx);

}  // namespace ferry::http::internal
