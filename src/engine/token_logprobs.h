// TokenLogprob: the log-probability of one token under the model, with the most likely
// alternatives at that position (OpenAI `logprobs`, vLLM `logprobs` / `prompt_logprobs`).
//
// Example:
//   std::vector<float> logits(512, 0.0f);  // one step's [vocab_size] logits
//   int32_t sampled = 7;
//   TokenLogprob lp = ComputeTokenLogprob(logits, /*token=*/sampled, /*top_k=*/5);
//   // lp.logprob <= 0; lp.top holds the 5 most likely ids, most likely first
//
// Values are the raw log-softmax of the model's logits: before temperature, top-k, top-p
// and banned ids (EOS before min_tokens), as vLLM's default `logprobs_mode` "raw_logprobs".
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace ferry::engine {

// Most alternatives a request may ask for (vLLM's default max_logprobs).
inline constexpr int32_t kMaxLogprobs = 20;

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;  // log p(token); -inf when the logit is -inf or NaN
  int32_t rank = 0;   // 1 + the number of ids strictly more likely than `token`
  // The top_k most likely (id, logprob), most likely first, lowest id on ties.
  std::vector<std::pair<int32_t, float>> top;
};

// log-softmax of `logits` ([vocab_size] floats) at `token`, plus the top `top_k` ids
// (0 <= top_k; capped at the vocabulary). Precondition: 0 <= token < logits.size().
TokenLogprob ComputeTokenLogprob(std::span<const float> logits, int32_t token, int32_t top_k);

}  // namespace ferry::engine
