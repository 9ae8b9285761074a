// Turns a trace request into a prompt of byte-level token ids and an output length.
//
// Every hash id becomes a block of block_tokens() token ids in [0, 256), generated from
// (hash id, seed) alone, so requests that share leading hash ids share leading token
// blocks exactly and a server's prefix cache sees the trace's sharing. With scale S the
// block size is max(1, round(trace_block_tokens * S)), the prompt is the request's blocks
// concatenated, cut or padded to round(input_length * S) tokens (at least 1; padding is
// unique to the request), then capped at max_prompt_tokens; the output length is
// max(1, round(output_length * S)).
//
// Example:
//   TraceRequest request{.input_length = 6955, .output_length = 52, .hash_ids = {46, 47}};
//   TracePromptBuilder builder({.trace_block_tokens = 512, .length_scale = 0.05});
//   std::vector<int> prompt = builder.Prompt(request, /*request_index=*/0);
//   int64_t max_tokens = builder.OutputTokens(request);
//
// Thread safety: const methods may run concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/trace/request_trace.h"

namespace ferry::bench {

struct TracePromptOptions {
  // Tokens per hash id in the trace. Default: 512 (Mooncake's traces).
  int64_t trace_block_tokens = 512;
  // Scales input length, output length and block size. Default: 1.0.
  double length_scale = 1.0;
  // Longest prompt sent (0: no cap). Default: 0.
  int64_t max_prompt_tokens = 0;
  // Mixed into every block's and padding's tokens. Default: 0.
  uint64_t seed = 0;
};

class TracePromptBuilder {
 public:
  explicit TracePromptBuilder(const TracePromptOptions& options);

  // Token ids per hash id after scaling (>= 1).
  int64_t block_tokens() const { return block_tokens_; }
  // The token ids of one hash id's block: block_tokens() values in [0, 256).
  std::vector<int> Block(int64_t hash_id) const;
  // Prompt tokens for `r` (length PromptTokens(r)). `request_index` (the request's
  // position in the trace) seeds the padding that follows the request's blocks.
  std::vector<int> Prompt(const TraceRequest& r, int64_t request_index) const;
  // Length of Prompt(r): max(1, round(input_length * scale)), capped.
  int64_t PromptTokens(const TraceRequest& r) const;
  // max(1, round(output_length * scale)).
  int64_t OutputTokens(const TraceRequest& r) const;

 private:
  TracePromptOptions options_;
  int64_t block_tokens_;
};

}  // namespace ferry::bench
