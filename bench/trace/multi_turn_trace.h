// A synthetic multi-turn chat trace in the Mooncake trace format (request_trace.h).
//
// Every session starts with the same system prompt (system_prompt_blocks hash ids shared
// by all sessions). Turn 1 adds turn_input_blocks new hash ids of user message; each later
// turn repeats the previous turn's hash ids, then new ids for the previous answer
// (ceil(output_length / block_tokens) blocks) and new ids for the next user message. So a
// server with a prefix cache can reuse the system prompt across sessions and the whole
// history within a session. input_length is len(hash_ids) * block_tokens minus a random
// partial last block (0 to block_tokens - 1 tokens). Sessions arrive as a Poisson process
// of `rate` per second (the first at 0); a session's next turn follows think_time_ms plus a
// uniform jitter of up to think_time_ms / 2 after the previous one. All other hash ids are
// unique. The result is sorted by timestamp (whole milliseconds) and depends only on the
// options.
//
// Example:
//   std::vector<TraceRequest> trace = MakeMultiTurnTrace({.sessions = 4, .turns = 3});
//   std::string jsonl;  // the trace file's text
//   for (const auto& r : trace) jsonl += TraceLine(r) + "\n";
//
// Thread safety: reentrant.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/trace/request_trace.h"

namespace ferry::bench {

struct MultiTurnTraceOptions {
  int64_t sessions = 16;             // Default: 16.
  int64_t turns = 4;                 // turns per session. Default: 4.
  int64_t system_prompt_blocks = 2;  // hash ids every session starts with. Default: 2.
  int64_t turn_input_blocks = 2;     // new hash ids per user message. Default: 2.
  int64_t output_length = 32;        // output tokens per turn. Default: 32.
  int64_t block_tokens = 512;        // tokens per hash id. Default: 512.
  double rate = 1.0;                 // sessions started per second (> 0). Default: 1.
  double think_time_ms = 2000;       // gap between turns, before jitter. Default: 2000.
  uint64_t seed = 0;                 // Default: 0.
};

// Precondition: sessions, turns >= 1; block_tokens >= 1; the other counts >= 0; rate > 0;
// think_time_ms >= 0 (the command's flags check these).
std::vector<TraceRequest> MakeMultiTurnTrace(const MultiTurnTraceOptions& options);

}  // namespace ferry::bench
