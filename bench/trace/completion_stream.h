// Splits a streamed /v1/completions response (server-sent events) into what a load
// generator measures: token events, the usage chunk, an error, and the final [DONE].
//
//   data: {"choices":[{"text":"He","index":0}],...}\n\n     -> one token event
//   data: {"choices":[],"usage":{"completion_tokens":8}}\n\n -> usage
//   data: {"error":{"message":"..."}}\n\n                     -> error
//   data: [DONE]\n\n                                          -> done
//
// Every chunk whose first choice has non-empty text counts as one token event (a chunk
// may carry more than one token, or a server may hold back an incomplete UTF-8 sequence,
// so events approximate tokens; `ferry bench serve` counts the same way).
//
//   CompletionStream stream;
//   req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
//     stream.Feed(std::string_view(d, n), [&] { on_token(SteadyClock::now()); });
//     return true;
//   };
//
// Thread safety: thread-compatible (one per request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace ferry::bench {

class CompletionStream {
 public:
  // Largest event buffered; a longer one is an error (see error()). Default: 1 MiB.
  explicit CompletionStream(size_t max_event_bytes = 1u << 20)
      : max_event_bytes_(max_event_bytes) {}

  // Consumes bytes of the response body, calling `on_token` once per token event, in
  // order. Events may be split across calls anywhere. Returns false once an error was
  // seen (a server error event, or an event over the size limit): stop reading.
  bool Feed(std::string_view bytes, const std::function<void()>& on_token);

  int64_t token_events() const { return token_events_; }
  // usage.completion_tokens of the usage chunk; -1 when none arrived.
  int64_t completion_tokens() const { return completion_tokens_; }
  // Whether "data: [DONE]" arrived.
  bool done() const { return done_; }
  // The server's error message, or why the stream was refused; empty when none.
  const std::string& error() const { return error_; }

 private:
  void HandleEvent(std::string_view event, const std::function<void()>& on_token);

  const size_t max_event_bytes_;
  std::string buffer_;  // bytes of the event not yet complete
  int64_t token_events_ = 0;
  int64_t completion_tokens_ = -1;
  bool done_ = false;
  std::string error_;
};

}  // namespace ferry::bench
