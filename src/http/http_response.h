// Response: what a handler fills in; ChunkWriter: how a streamed body is written.
//
//   server->Route("GET", "/v1/models", [](const http::Request&, http::Response& res) {
//     res.Set(200, R"({"object":"list","data":[]})", "application/json");
//   });
//   server->Route("POST", "/stream", [](const http::Request&, http::Response& res) {
//     res.SetHeader("Cache-Control", "no-cache");
//     res.Stream("text/event-stream", [](http::ChunkWriter& out) {
//       for (int i = 0; i < 3 && out.Write("data: x\n\n"); ++i) {}
//     });
//   });
//
// The server frames the response itself: it writes Content-Length (or, for Stream,
// chunked transfer encoding; plain bytes and a close for an HTTP/1.0 client) and
// Connection, and drops any Content-Length, Transfer-Encoding or Connection header a
// handler sets, and any header whose name or value holds CR, LF or NUL.
//
// Thread safety: a Response belongs to the one handler call that fills it. A ChunkWriter
// is used by the producer on the worker thread that calls it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_request.h"

namespace ferry::http {

class ChunkWriter;

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Sets status, body and Content-Type.
  void Set(int status, std::string body, std::string content_type);
  // Sets a header, replacing any of the same name (ASCII case-insensitive).
  void SetHeader(std::string name, std::string value);
  // Streams the body: the server sends the status line and headers, then calls
  // `producer` once on the worker thread. ChunkWriter::Write returns false once the
  // client is gone, a write timed out or the server is stopping; the producer should then
  // return. `body` is ignored.
  void Stream(std::string content_type, std::function<void(ChunkWriter&)> producer);

  // The producer given to Stream(), empty if none.
  const std::function<void(ChunkWriter&)>& stream_producer() const { return producer_; }

 private:
  std::function<void(ChunkWriter&)> producer_;
};

// Writes one streamed body to a connection (constructed by HttpServer).
class ChunkWriter {
 public:
  // `chunked`: chunked transfer encoding (HTTP/1.1), else raw bytes (HTTP/1.0, the
  // connection then closes). `stopping` turns every later Write into false.
  ChunkWriter(int fd, bool chunked, std::chrono::milliseconds write_timeout,
              const std::atomic<bool>* stopping);
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Sends `data` as one chunk (an empty `data` sends nothing and returns ok()). Blocks
  // until the client took it or write_timeout passed. False once the stream cannot
  // continue (see ok()); the connection is then closed after the producer returns.
  bool Write(std::string_view data);
  // False once a write failed or timed out, the client closed its side, or the server is
  // stopping. Costs one poll(2): a producer that waits for data may check it between
  // waits.
  bool ok() const;

  // Ends the body (the terminating zero-size chunk). Called by the server after the
  // producer returns; true when the response is complete on the wire.
  bool Finish();

 private:
  const int fd_;
  const bool chunked_;
  const std::chrono::milliseconds write_timeout_;
  const std::atomic<bool>* const stopping_;
  bool failed_ = false;
};

// What a route runs, on a worker thread: reads the request, fills the response. An
// exception it throws is caught by the server and answered 500.
using Handler = std::function<void(const Request&, Response&)>;

// The reason phrase of a status code ("Not Found"), "Unknown" for codes without one.
std::string_view ReasonPhrase(int status);

}  // namespace ferry::http
