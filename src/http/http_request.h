// Request: one parsed HTTP/1.x request as HttpServer hands it to a handler.
//
//   server->Route("GET", "/metadata", [](const http::Request& req, http::Response& res) {
//     std::optional<std::string> key = req.Param("key");       // percent-decoded
//     if (!key) return res.Set(400, "missing key parameter", "text/plain");
//     std::string id = req.Header("x-request-id");             // case-insensitive, "" if absent
//     ...
//   });
//
// The parser (request_parser.h) has already enforced the limits and the syntax: `path` is
// percent-decoded, header names and values hold no control characters, and `body` is the
// whole decoded body (Content-Length or chunked). A Request is valid only for the duration
// of the handler call; ClientGone() may be called from the handler's thread while it waits.
//
// Thread safety: const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::http {

namespace internal {
class ConnectionLoop;
}  // namespace internal

struct Request {
  std::string method;        // "GET", "POST", ... (case-sensitive, as sent)
  std::string target;        // the request target as sent: "/v1/models?x=1"
  std::string path;          // the target's path, percent-decoded: "/v1/models"
  std::string query_string;  // the raw text after '?', "" if none
  int http_minor = 1;        // 0 for HTTP/1.0, 1 for HTTP/1.1
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;
  std::string remote_addr;  // the peer's IP address: "127.0.0.1", "::1"
  uint16_t remote_port = 0;

  // The first header named `name` (ASCII case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // The first query parameter named `name`, decoded ('+' is a space, %XX a byte; a
  // malformed escape is kept as is); nullopt if absent. "?key=" gives "".
  std::optional<std::string> Param(std::string_view name) const;
  // True once the peer has closed its side of the connection (or reset it), or the
  // server is stopping and shut the connection down. False for a Request not made by
  // HttpServer. Costs one poll(2); intended for a handler's wait loop.
  bool ClientGone() const;

 private:
  friend class internal::ConnectionLoop;
  int client_fd_ = -1;  // the connection's socket, owned by the server
};

// ASCII case-insensitive equality, for header names and tokens.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`). Returns nullopt on a
// malformed escape or a decoded NUL byte.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

}  // namespace ferry::http
