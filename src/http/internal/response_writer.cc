#include "http/internal/response_writer.h"

#include <exception>

#include "common/deadline.h"
#include "common/log.h"
#include "http/http_request.h"
#include "http/internal/socket_io.h"

namespace ferry::http::internal {
namespace {

// Headers the server writes itself; a handler's copies are dropped.
bool IsFramingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Connection");
}

bool IsSafeHeaderText(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool HandlerAsksToClose(const Response& res) {
  for (const auto& [name, value] : res.headers) {
    if (EqualsIgnoreCase(name, "Connection") && EqualsIgnoreCase(value, "close")) return true;
  }
  return false;
}

// 1xx, 204 and 304 responses carry no body.
bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

}  // namespace

std::string ResponseHead(const Response& res, bool chunked, size_t content_length, bool keep_alive,
                         int http_minor) {
  std::string head;
  head.reserve(128 + 64 * res.headers.size());
  head += "HTTP/1.1 ";
  head += std::to_string(res.status);
  head += ' ';
  head += ReasonPhrase(res.status);
  head += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (name.empty() || IsFramingHeader(name) || !IsSafeHeaderText(name) ||
        !IsSafeHeaderText(value)) {
      continue;
    }
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (StatusHasBody(res.status) && content_length != static_cast<size_t>(-1)) {
    head += "Content-Length: ";
    head += std::to_string(content_length);
    head += "\r\n";
  }
  if (!keep_alive) {
    head += "Connection: close\r\n";
  } else if (http_minor == 0) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  return head;
}

std::string ErrorResponse(const HttpServerOptions& options, int status, std::string_view message,
                          const std::vector<std::pair<std::string, std::string>>& extra_headers) {
  ErrorBody body = options.error_body ? options.error_body(status, message)
                                      : ErrorBody{std::string(message) + "\n", "text/plain"};
  Response res;
  res.status = status;
  res.headers = extra_headers;
  res.Set(status, std::move(body.body), std::move(body.content_type));
  return ResponseHead(res, /*chunked=*/false, res.body.size(), /*keep_alive=*/false, 1) + res.body;
}

bool WriteResponse(int fd, const Response& res, const WriteContext& ctx) {
  bool keep_alive = ctx.keep_alive && !HandlerAsksToClose(res);
  const auto& producer = res.stream_producer();
  if (!producer) {
    const bool has_body = StatusHasBody(res.status);
    const std::string head =
        ResponseHead(res, false, has_body ? res.body.size() : 0, keep_alive, ctx.http_minor);
    std::string_view parts[] = {head, has_body ? std::string_view(res.body) : std::string_view()};
    return SendAll(fd, parts, Deadline::In(ctx.write_timeout)) && keep_alive;
  }
  // HTTP/1.0 has no chunked encoding: raw bytes, and the close ends the body.
  const bool chunked = ctx.http_minor >= 1;
  if (!chunked) keep_alive = false;
  const std::string head =
      ResponseHead(res, chunked, static_cast<size_t>(-1), keep_alive, ctx.http_minor);
  std::string_view parts[] = {head};
  if (!SendAll(fd, parts, Deadline::In(ctx.write_timeout))) return false;
  ChunkWriter writer(fd, chunked, ctx.write_timeout, ctx.stopping);
  try {
    producer(writer);
  } catch (const std::exception& e) {
    FERRY_LOG_ERROR("{}: stream producer threw: {}", ctx.server_name, e.what());
    return false;
  } catch (...) {
    FERRY_LOG_ERROR("{}: stream producer threw a non-std exception", ctx.server_name);
    return false;
  }
  return writer.Finish() && keep_alive;
}

}  // namespace ferry::http::internal
