// RequestStream: the per-request channel from the engine thread to whoever waits for the
// answer (an HTTP handler, a test).
//
// Example (namespace scope):
//   // Appends a request's text to *text until it finishes; `stream` is what
//   // LlmEngine::Submit returned.
//   void Drain(RequestStream& stream, std::string* text) {
//     RequestOutput out;
//     while (true) {
//       switch (stream.Next(Deadline::In(std::chrono::seconds(1)), &out)) {
//         case RequestStream::Poll::kTimedOut: continue;  // check the client, wait again
//         case RequestStream::Poll::kClosed: return;      // the final output was taken
//         case RequestStream::Poll::kOutput: break;
//       }
//       *text += out.text;
//       if (out.finished) return;
//     }
//   }
//
// The engine pushes one RequestOutput per step in which the request produced a token
// (text may be empty while bytes are held back) and a final one with finished = true.
// Thread safety: all methods are thread-safe; one producer (engine) and one consumer.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
#include "engine/stream_signal.h"
#include "engine/token_logprobs.h"
#include "ferry/status.h"

namespace ferry::engine {

struct RequestOutput {
  std::string text;                // new text since the previous output (UTF-8 bytes)
  std::vector<int32_t> token_ids;  // new token ids since the previous output
  // With SamplingParams::logprobs >= 0: one entry per token_ids entry.
  std::vector<TokenLogprob> logprobs;
  // With SamplingParams::prompt_logprobs >= 0, in the first output (the one after the prompt
  // was computed): prompt positions 1 .. prompt_tokens-1 (position 0 has no logprob).
  std::vector<TokenLogprob> prompt_logprobs;
  bool finished = false;
  std::string finish_reason;  // when finished: "stop" | "length" | "abort"
  Status error;               // non-OK when the engine failed the request (finished)
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // generated so far
  int32_t cached_tokens = 0;      // prompt tokens served from the prefix cache
  // Final output only: the connector's kv_transfer_params for the response (a JSON
  // object's text), if any.
  std::optional<std::string> kv_transfer_params;
  int64_t time_ns = 0;  // NowNanos() when produced
};

class RequestStream {
 public:
  // `signal` (may be null) is notified after every Push.
  explicit RequestStream(std::shared_ptr<StreamSignal> signal = nullptr)
      : signal_(std::move(signal)) {}

  // Engine side. Outputs after a finished one are dropped.
  void Push(RequestOutput out);

  // What a Next call found. Waiting in vain is not an error: the three outcomes are kept
  // apart so that a caller retries only on kTimedOut.
  enum class Poll {
    kOutput,    // *out holds the next output (the final one has finished = true)
    kTimedOut,  // nothing before the deadline; the stream stays usable
    kClosed,    // the final output was already taken: nothing more will come
  };

  // Waits for the next output until `deadline` (Deadline::In(0) only looks). *out is
  // written only on kOutput. A request the engine failed still ends with a final output
  // (its `error` set): errors travel in RequestOutput, never as the Poll outcome.
  Poll Next(Deadline deadline, RequestOutput* out);

  // True once the final output has been pushed.
  bool finished() const;

 private:
  const std::shared_ptr<StreamSignal> signal_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<RequestOutput> queue_ FERRY_GUARDED_BY(mu_);
  bool pushed_final_ FERRY_GUARDED_BY(mu_) = false;
  bool taken_final_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::engine
