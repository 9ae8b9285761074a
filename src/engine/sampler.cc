#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace ferry::engine {
namespace {

bool IsBanned(std::span<const int32_t> banned, int32_t id) {
  return std::find(banned.begin(), banned.end(), id) != banned.end();
}

int32_t Argmax(std::span<const float> logits, std::span<const int32_t> banned) {
  int32_t best = -1;
  float best_v = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (!banned.empty() && IsBanned(banned, id)) continue;
    if (best < 0 || logits[i] > best_v) {
      best = id;
      best_v = logits[i];
    }
  }
  return best < 0 ? 0 : best;
}

// Uniform double in [0, 1) from 53 random bits (identical on every platform).
double Uniform01(SamplerRng* rng) { return static_cast<double>((*rng)() >> 11) * 0x1.0p-53; }

}  // namespace

SamplerRng MakeSamplerRng(std::optional<uint64_t> seed) {
  if (seed.has_value()) return SamplerRng(*seed);
  std::random_device rd;
  return SamplerRng((static_cast<uint64_t>(rd()) << 32) ^ rd());
}

int32_t SampleToken(std::span<const float> logits, const SamplingParams& params,
                    std::span<const int32_t> banned, SamplerRng* rng) {
  if (params.temperature <= kGreedyTemperature) return Argmax(logits, banned);

  std::vector<std::pair<float, int32_t>> cand;
  cand.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (!banned.empty() && IsBanned(banned, id)) continue;
    if (std::isnan(logits[i])) continue;
    cand.emplace_back(logits[i], id);
  }
  if (cand.empty()) return Argmax(logits, {});
  // Highest logit first, lowest id on ties: a total order, so results are reproducible.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < cand.size()) {
    std::partial_sort(cand.begin(), cand.begin() + params.top_k, cand.end(), by_logit);
    cand.resize(params.top_k);
  } else {
    std::sort(cand.begin(), cand.end(), by_logit);
  }

  const double inv_t = 1.0 / params.temperature;
  const double max_logit = cand.front().first;
  std::vector<double> probs(cand.size());
  double total = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    probs[i] = std::exp((cand[i].first - max_logit) * inv_t);
    total += probs[i];
  }
  size_t keep = cand.size();
  if (params.top_p > 0 && params.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
      cum += probs[i] / total;
      if (cum >= params.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs[i];
  }
  const double r = Uniform01(rng) * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (r < acc) return cand[i].second;
  }
  return cand[keep - 1].second;
}

}  // namespace ferry::engine
