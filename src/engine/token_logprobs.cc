#include "engine/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ferry::engine {

TokenLogprob ComputeTokenLogprob(std::span<const float> logits, int32_t token, int32_t top_k) {
  // log p(i) = x_i - max - log(sum exp(x_j - max)), summed in double.
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float x : logits) {
    if (!std::isnan(x)) max_logit = std::max(max_logit, x);
  }
  double sum = 0;
  for (float x : logits) {
    if (!std::isnan(x)) sum += std::exp(static_cast<double>(x) - max_logit);
  }
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  auto logprob = [&](int32_t id) {
    const float x = logits[static_cast<size_t>(id)];
    if (std::isnan(x) || !std::isfinite(log_z)) return -std::numeric_limits<float>::infinity();
    return static_cast<float>(static_cast<double>(x) - log_z);
  };
  // NaN sorts as least likely.
  auto value = [&](int32_t id) {
    const float x = logits[static_cast<size_t>(id)];
    return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x;
  };
  TokenLogprob lp;
  lp.token = token;
  lp.logprob = logprob(token);
  const float own = value(token);
  int32_t better = 0;
  for (size_t i = 0; i < logits.size(); ++i) better += value(static_cast<int32_t>(i)) > own;
  lp.rank = better + 1;

  const auto k = static_cast<size_t>(std::clamp<int64_t>(top_k, 0, logits.size()));
  if (k == 0) return lp;
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    [&](int32_t a, int32_t b) {
                      const float va = value(a), vb = value(b);
                      return va != vb ? va > vb : a < b;
                    });
  lp.top.reserve(k);
  for (size_t i = 0; i < k; ++i) lp.top.emplace_back(ids[i], logprob(ids[i]));
  return lp;
}

}  // namespace ferry::engine
