#include "bench/trace/prefix_hit_counters.h"

#include <algorithm>

namespace ferry::bench {

Result<PrefixHitCounters> PrefixHitCounters::FromSums(const PrometheusSums& sums) {
  if (sums.find(kPromptTokensMetric) == sums.end()) {
    return NotFoundError(std::string("no ") + kPromptTokensMetric +
                         " in /metrics (is it a Ferry server?)");
  }
  PrefixHitCounters c;
  c.prompt = SumOr(sums, kPromptTokensMetric, 0);
  c.local = SumOr(sums, kLocalHitTokensMetric, 0);
  c.pool = SumOr(sums, kPoolHitTokensMetric, 0);
  const double derived = std::max(0.0, c.prompt - c.local - c.pool);
  c.computed = SumOr(sums, kComputedTokensMetric, derived);
  return c;
}

PrefixHitCounters PrefixHitCounters::operator-(const PrefixHitCounters& before) const {
  return {prompt - before.prompt, local - before.local, pool - before.pool,
          computed - before.computed};
}

PrefixHitCounters& PrefixHitCounters::operator+=(const PrefixHitCounters& other) {
  prompt += other.prompt;
  local += other.local;
  pool += other.pool;
  computed += other.computed;
  return *this;
}

}  // namespace ferry::bench
