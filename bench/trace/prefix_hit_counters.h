// Where a server's prompt tokens came from, read from its Prometheus counters:
//
//   ferry_prompt_tokens_total            prompt tokens of admitted requests
//   ferry_prefix_cache_hit_tokens_total  served from the instance's local prefix cache
//   ferry_kv_pool_hit_tokens_total       loaded from the KV pool (absent: 0)
//   ferry_prompt_tokens_computed_total   computed by the instance (absent: prompt - local
//                                        - pool, at least 0)
//
// Example:
//   PrometheusSums sums_before, sums_after;  // ParsePrometheusText of /metrics around a run
//   FERRY_ASSIGN_OR_RETURN(PrefixHitCounters before, PrefixHitCounters::FromSums(sums_before));
//   FERRY_ASSIGN_OR_RETURN(PrefixHitCounters after, PrefixHitCounters::FromSums(sums_after));
//   PrefixHitCounters used = after - before;
//   double local = used.local_hit_rate();  // of the run's prompt tokens
//
// Value type.
#pragma once

#include "bench/trace/prometheus_text.h"

namespace ferry::bench {

inline constexpr char kPromptTokensMetric[] = "ferry_prompt_tokens_total";
inline constexpr char kLocalHitTokensMetric[] = "ferry_prefix_cache_hit_tokens_total";
inline constexpr char kPoolHitTokensMetric[] = "ferry_kv_pool_hit_tokens_total";
inline constexpr char kComputedTokensMetric[] = "ferry_prompt_tokens_computed_total";

struct PrefixHitCounters {
  double prompt = 0;    // ferry_prompt_tokens_total
  double local = 0;     // ferry_prefix_cache_hit_tokens_total
  double pool = 0;      // ferry_kv_pool_hit_tokens_total (0 when absent)
  double computed = 0;  // ferry_prompt_tokens_computed_total, or derived (see above)

  // The counters of one server's /metrics. Errors: NotFound when the server exposes no
  // ferry_prompt_tokens_total (not a Ferry server, or an old one).
  static Result<PrefixHitCounters> FromSums(const PrometheusSums& sums);

  // Field-wise difference (after - before) and sum (over servers).
  PrefixHitCounters operator-(const PrefixHitCounters& before) const;
  PrefixHitCounters& operator+=(const PrefixHitCounters& other);

  // Fractions of `prompt` (0 when prompt is 0).
  double local_hit_rate() const { return prompt > 0 ? local / prompt : 0; }
  double pool_hit_rate() const { return prompt > 0 ? pool / prompt : 0; }
  double total_hit_rate() const { return prompt > 0 ? (local + pool) / prompt : 0; }
};

}  // namespace ferry::bench
