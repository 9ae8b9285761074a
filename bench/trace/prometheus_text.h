// Reads the Prometheus text exposition format (what GET /metrics returns) into one sum per
// metric name.
//
//   # HELP ferry_prompt_tokens_total Prompt tokens of admitted requests.
//   # TYPE ferry_prompt_tokens_total counter
//   ferry_prompt_tokens_total 1024
//   ferry_request_success_total{finished_reason="length"} 3
//   ferry_request_success_total{finished_reason="abort"} 1 1700000000000
//
// gives {"ferry_prompt_tokens_total": 1024, "ferry_request_success_total": 4}: the samples
// of a name are summed over all their label sets. Comment lines (#) and blank lines are
// skipped; label values may hold escaped quotes, '}' and ','; an optional timestamp after
// the value is ignored. Histogram series keep their own names (`..._bucket`, `..._sum`).
//
// Example:
//   std::string_view body = "ferry_prompt_tokens_total 1024\n";  // a GET /metrics body
//   FERRY_ASSIGN_OR_RETURN(PrometheusSums sums, ParsePrometheusText(body));
//   double prompt = SumOr(sums, "ferry_prompt_tokens_total", 0);
//
// Thread safety: reentrant.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::bench {

using PrometheusSums = std::map<std::string, double, std::less<>>;

// Errors: InvalidArgument naming the first malformed sample line ("metrics line 12: ...").
Result<PrometheusSums> ParsePrometheusText(std::string_view text);

// sums[name], or `fallback` when the name is absent.
double SumOr(const PrometheusSums& sums, std::string_view name, double fallback);

}  // namespace ferry::bench
