#include "bench/trace/trace_prompt_builder.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace ferry::bench {
namespace {

// Domain tags keep a block's stream apart from a padding stream with the same number.
constexpr uint32_t kBlockTag = 0x626c6b;    // "blk"
constexpr uint32_t kPaddingTag = 0x706164;  // "pad"

// Appends `n` token ids in [0, 256) drawn from a generator seeded with (tag, key, seed).
// std::seed_seq and std::mt19937 are fully specified, so the tokens are the same on every
// platform and standard library.
void AppendTokens(uint32_t tag, uint64_t key, uint64_t seed, int64_t n, std::vector<int>* out) {
  std::seed_seq seq{tag, static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32),
                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  std::mt19937 rng(seq);
  for (int64_t i = 0; i < n; ++i) out->push_back(static_cast<int>(rng() & 0xff));
}

int64_t RoundedAtLeastOne(double x) { return std::max<int64_t>(1, std::llround(x)); }

}  // namespace

TracePromptBuilder::TracePromptBuilder(const TracePromptOptions& options)
    : options_(options),
      block_tokens_(RoundedAtLeastOne(static_cast<double>(options.trace_block_tokens) *
                                      options.length_scale)) {}

std::vector<int> TracePromptBuilder::Block(int64_t hash_id) const {
  std::vector<int> out;
  out.reserve(block_tokens_);
  AppendTokens(kBlockTag, static_cast<uint64_t>(hash_id), options_.seed, block_tokens_, &out);
  return out;
}

int64_t TracePromptBuilder::PromptTokens(const TraceRequest& r) const {
  int64_t n = RoundedAtLeastOne(static_cast<double>(r.input_length) * options_.length_scale);
  if (options_.max_prompt_tokens > 0) n = std::min(n, options_.max_prompt_tokens);
  return n;
}

int64_t TracePromptBuilder::OutputTokens(const TraceRequest& r) const {
  return RoundedAtLeastOne(static_cast<double>(r.output_length) * options_.length_scale);
}

std::vector<int> TracePromptBuilder::Prompt(const TraceRequest& r, int64_t request_index) const {
  const int64_t n = PromptTokens(r);
  std::vector<int> out;
  out.reserve(n + block_tokens_);
  for (int64_t id : r.hash_ids) {
    if (static_cast<int64_t>(out.size()) >= n) break;
    AppendTokens(kBlockTag, static_cast<uint64_t>(id), options_.seed, block_tokens_, &out);
  }
  if (static_cast<int64_t>(out.size()) < n) {
    AppendTokens(kPaddingTag, static_cast<uint64_t>(request_index), options_.seed,
                 n - static_cast<int64_t>(out.size()), &out);
  }
  out.resize(n);
  return out;
}

}  // namespace ferry::bench
