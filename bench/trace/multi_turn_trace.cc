#include "bench/trace/multi_turn_trace.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace ferry::bench {

std::vector<TraceRequest> MakeMultiTurnTrace(const MultiTurnTraceOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap_s(o.rate);
  std::uniform_real_distribution<double> jitter_ms(0, o.think_time_ms / 2);
  std::uniform_int_distribution<int64_t> partial(0, o.block_tokens - 1);
  const int64_t answer_blocks = (o.output_length + o.block_tokens - 1) / o.block_tokens;

  int64_t next_id = 0;
  auto append_new = [&next_id](int64_t n, std::vector<int64_t>* ids) {
    for (int64_t i = 0; i < n; ++i) ids->push_back(next_id++);
  };
  std::vector<int64_t> system;
  append_new(o.system_prompt_blocks, &system);

  std::vector<TraceRequest> out;
  out.reserve(o.sessions * o.turns);
  double session_start_ms = 0;
  for (int64_t s = 0; s < o.sessions; ++s) {
    if (s > 0) session_start_ms += gap_s(rng) * 1e3;
    double t_ms = session_start_ms;
    std::vector<int64_t> ids = system;
    for (int64_t turn = 0; turn < o.turns; ++turn) {
      if (turn > 0) {
        append_new(answer_blocks, &ids);
        t_ms += o.think_time_ms + jitter_ms(rng);
      }
      append_new(o.turn_input_blocks, &ids);
      TraceRequest r;
      r.timestamp_ms = std::round(t_ms);
      r.hash_ids = ids;
      const int64_t full = static_cast<int64_t>(ids.size()) * o.block_tokens;
      r.input_length = full > 0 ? full - partial(rng) : 0;
      r.output_length = o.output_length;
      out.push_back(std::move(r));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const TraceRequest& a, const TraceRequest& b) {
    return a.timestamp_ms < b.timestamp_ms;
  });
  return out;
}

}  // namespace ferry::bench
