// Replays a request trace against an OpenAI-compatible server: request i is sent at
// start + timestamp_ms(i) * time_scale as a streamed POST /v1/completions (prompt from
// TracePromptBuilder, "max_tokens" the scaled output length, "ignore_eos": true,
// "temperature": 0), on a pool of max_concurrency threads. A request that finds every
// thread busy waits, and that wait counts: TTFT and e2e latency are measured from the
// scheduled send time, not from when the request left.
//
//   ReplayOptions o;  o.url = "http://127.0.0.1:8000";  o.prompt.length_scale = 0.1;
//   ReplayResult r = ReplayTrace(trace, o);   // blocks until every request ended
//   for (const ReplaySample& s : r.samples) if (!s.ok) fmt::print("{}\n", s.error);
//
// Bounded: nothing is sent after duration_limit_s, a request still running then is cut
// off (and fails), and every HTTP call has connect, read and write timeouts.
// Thread safety: ReplayTrace may run concurrently with itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/trace/request_trace.h"
#include "bench/trace/trace_prompt_builder.h"

namespace ferry::bench {

struct ReplayOptions {
  // Server base URL. Default: http://127.0.0.1:8000.
  std::string url = "http://127.0.0.1:8000";
  // "model" sent with every request (empty: none). Default: empty.
  std::string model;
  // Multiplies every timestamp (0.5 replays twice as fast). Default: 1.0.
  double time_scale = 1.0;
  // Requests in flight at most. Default: 64.
  int max_concurrency = 64;
  // Overall bound of the run, in seconds. Default: 600.
  double duration_limit_s = 600;
  // TCP connect timeout per request, in seconds. Default: 5.
  int connect_timeout_s = 5;
  // How trace requests become prompts. Default: see TracePromptOptions.
  TracePromptOptions prompt;
};

// One request's outcome; times are in milliseconds.
struct ReplaySample {
  bool ok = false;             // HTTP 200, tokens streamed, [DONE] received, no error
  double scheduled_ms = 0;     // when it was due, after the run's start
  double ttft_ms = -1;         // scheduled send -> first token event (-1: none)
  double e2e_ms = 0;           // scheduled send -> end of the response
  std::vector<double> tbt_ms;  // gaps between consecutive token events
  double mean_tbt_ms = 0;      // (last - first token event) / (events - 1); 0 for one event
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;  // the usage chunk's completion_tokens, else token events
  std::string error;          // why it failed; empty when ok
};

struct ReplayResult {
  std::vector<ReplaySample> samples;  // in trace order
  double wall_s = 0;                  // from the start until the last request ended
};

ReplayResult ReplayTrace(const std::vector<TraceRequest>& trace, const ReplayOptions& options);

}  // namespace ferry::bench
