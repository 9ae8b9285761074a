// `ferry bench trace`: replays a Mooncake-format request trace (request_trace.h) against an
// OpenAI-compatible server at the trace's own pace (trace_replayer.h) and reports TTFT,
// time between tokens, end-to-end latency, SLO attainment and, from the servers'
// Prometheus counters, how much of the prompt came from the prefix cache and the KV pool,
// as a table and one JSON line. Exit code 0 when every request succeeded, 1 when any
// failed, 2 when the trace or a metrics URL could not be read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/trace/trace_replayer.h"

namespace ferry::bench {

struct TraceBenchOptions {
  std::string trace;
  ReplayOptions replay;
  int64_t max_requests = 0;
  double ttft_slo_ms = 2000;
  double tbt_slo_ms = 200;
  std::vector<std::string> metrics_urls;
};

// Runs it; returns the exit code.
int RunTraceBench(const TraceBenchOptions& options);

}  // namespace ferry::bench
