// Sampling: turns one row of logits into a token id.
//
// Example:
//   std::vector<float> logits(512, 0.0f);  // one step's [vocab_size] logits
//   SamplingParams p;
//   p.temperature = 0.7f;
//   p.top_p = 0.9f;
//   p.seed = 42;
//   SamplerRng rng = MakeSamplerRng(p.seed);      // one per request
//   int32_t id = SampleToken(logits, p, /*banned=*/{}, &rng);
//
// temperature <= kGreedyTemperature means greedy (argmax, lowest id on ties) and uses no
// randomness. Otherwise: drop `banned` ids, keep the top_k highest logits (top_k <= 0: all),
// softmax(logits / temperature), keep the smallest set of most likely tokens whose
// probability reaches top_p (at least one), renormalise and draw. With a seed, the same
// logits and parameters give the same sequence of draws on every run.
//
// Thread safety: SampleToken is a pure function of its arguments (the rng is the caller's).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ferry::engine {

inline constexpr float kGreedyTemperature = 1e-5f;

// Per-request generation settings (OpenAI request fields).
struct SamplingParams {
  float temperature = 1.0f;      // Default: 1.0. 0 = greedy.
  float top_p = 1.0f;            // In (0, 1]. Default: 1.0 (no cut).
  int32_t top_k = 0;             // <= 0: no cut. Default: 0.
  std::optional<uint64_t> seed;  // Default: none (random per request).
  // Tokens to generate at most; 0 runs the prompt only (to score it). Default: 16.
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;         // EOS and stop strings are ignored before this. Default: 0.
  std::vector<std::string> stop;  // Stop strings, trimmed from the output. Default: none.
  bool ignore_eos = false;        // Default: false.
  // Log-probabilities (engine/token_logprobs.h): for each sampled token with this many
  // alternatives (0 .. kMaxLogprobs), and for each prompt token after the first (then the
  // prompt is computed whole, without prefix-cache hits). -1: none. Default: -1.
  int32_t logprobs = -1;
  int32_t prompt_logprobs = -1;
};

using SamplerRng = std::mt19937_64;

// A generator seeded from `seed`, or from std::random_device when there is none.
SamplerRng MakeSamplerRng(std::optional<uint64_t> seed);

// Picks a token from `logits` ([vocab_size] floats). `banned` ids (e.g. EOS before
// min_tokens) are never picked unless every id is banned. Precondition: !logits.empty().
int32_t SampleToken(std::span<const float> logits, const SamplingParams& params,
                    std::span<const int32_t> banned, SamplerRng* rng);

}  // namespace ferry::engine
