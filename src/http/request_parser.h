// RequestParser: reads HTTP/1.0 and 1.1 requests, one at a time, incrementally and
// strictly, from the bytes of one connection, within HttpLimits.
//
//   RequestParser parser(limits);
//   std::string in;                          // bytes read from the socket, appended
//   ParseStep step = parser.Parse(&in);      // consumes what it used from the front of `in`
//   if (step == ParseStep::kHeadersDone) {   // once per request: route, 100-continue
//     step = parser.Parse(&in);
//   }
//   if (step == ParseStep::kComplete) { Request r = parser.TakeRequest(); }   // and Reset()
//   if (step == ParseStep::kError) { answer parser.error_status(), parser.error_message() }
//
// Bytes after the end of a request stay in `in` (a pipelined next request). Errors:
// 400 malformed request line, header (no ':', folding, control characters), Host,
// Content-Length (not a plain decimal, two differing, or together with Transfer-Encoding)
// or chunk syntax; 413 body over max_body_bytes (known from Content-Length before the
// body is read); 414 target over max_uri_bytes; 417 an Expect other than 100-continue;
// 431 headers over max_header_bytes or max_headers; 501 a Transfer-Encoding other than
// chunked; 505 an HTTP version other than 1.0 and 1.1. Memory is bounded by the limits:
// a Content-Length is never allocated up front.
//
// Thread safety: none; one parser per connection.
#pragma once

#include <cstdint>
#include <string>

#include "http/http_request.h"
#include "http/http_server_options.h"

namespace ferry::http {

enum class ParseStep {
  kNeedMore,     // all of `in` consumed or kept; read more bytes and call again
  kHeadersDone,  // the headers are parsed (returned once per request); call again
  kComplete,     // a whole request is ready: TakeRequest()
  kError,        // malformed or over a limit: error_status(), then close the connection
};

class RequestParser {
 public:
  explicit RequestParser(const HttpLimits& limits) : limits_(limits) {}

  // Consumes bytes from the front of *in. Idempotent once kComplete or kError.
  ParseStep Parse(std::string* in);

  // Valid after kHeadersDone: the request so far (no body yet).
  const Request& request() const { return request_; }
  // True when the request has a body still to come (Content-Length > 0 or chunked).
  bool HasBody() const { return chunked_ || content_length_ > 0; }
  // True when the client sent "Expect: 100-continue" (HTTP/1.1).
  bool ExpectsContinue() const { return expect_continue_; }
  // Whether the client asked to keep the connection open (version and Connection header).
  bool ClientWantsKeepAlive() const { return keep_alive_; }

  // The error's HTTP status (400, 413, ...) and a message for the error body.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  // After kComplete: moves the request out and resets the parser for the next one.
  Request TakeRequest();
  void Reset();

 private:
  enum class Stage { kHeaders, kFixedBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kDone };

  ParseStep Fail(int status, std::string message);
  ParseStep ParseHeaders(std::string* in);
  ParseStep ParseHeaderBlock(std::string_view block);
  ParseStep ParseRequestLine(std::string_view line);
  ParseStep ApplyHeaders();
  ParseStep ParseBody(std::string* in);

  const HttpLimits limits_;
  Stage stage_ = Stage::kHeaders;
  bool failed_ = false;
  Request request_;
  size_t scanned_ = 0;              // bytes of `in` already searched for the end of the headers
  bool request_line_seen_ = false;  // a CRLF was found among those bytes
  bool chunked_ = false;
  bool expect_continue_ = false;
  bool keep_alive_ = true;
  uint64_t content_length_ = 0;
  uint64_t remaining_ = 0;    // of the fixed body or the current chunk
  size_t trailer_bytes_ = 0;  // trailer section so far, counted against max_header_bytes
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace ferry::http
