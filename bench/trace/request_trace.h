// The Mooncake request trace format: one JSON object per line,
//
//   {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]}
//
// `timestamp` is the arrival time in milliseconds since the trace's start (any JSON number
// >= 0), `input_length` and `output_length` are token counts, and every hash id names one
// block of the trace's block size (512 tokens in Mooncake's traces): requests with equal
// leading hash ids share those leading blocks of prompt. Other fields are ignored.
//
// Example (namespace scope):
//   Result<size_t> CountRequests(std::istream& in) {  // e.g. an std::ifstream of the file
//     FERRY_ASSIGN_OR_RETURN(std::vector<TraceRequest> reqs, ReadTrace(in, TraceLimits{}));
//     return reqs.size();
//   }
//
// Thread safety: reentrant.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::bench {

struct TraceRequest {
  double timestamp_ms = 0;        // arrival, ms since the trace's start (>= 0)
  int64_t input_length = 0;       // prompt tokens
  int64_t output_length = 0;      // output tokens
  std::vector<int64_t> hash_ids;  // one per prompt block, each >= 0
  int64_t line = 0;               // 1-based line in the trace file (0: not read from a file)
};

struct TraceLimits {
  // Longest line accepted, in bytes. Default: 1 MiB.
  size_t max_line_bytes = 1u << 20;
  // Most hash ids on one line. Default: 65536.
  size_t max_hash_ids = 65536;
  // Largest input_length and output_length accepted. Default: 16M tokens.
  int64_t max_length = 1 << 24;
  // Stop after this many requests (0: read them all). Default: 0.
  int64_t max_requests = 0;
};

// Parses one line (without its newline). Errors: InvalidArgument naming the field, e.g.
// "line 7: \"hash_ids\"[3] must be an integer >= 0"; `line` is only used in messages and
// stored in the result. Never throws.
Result<TraceRequest> ParseTraceLine(std::string_view text, int64_t line, const TraceLimits& limits);

// Reads a whole trace: blank lines are skipped, any other line must parse (the first bad
// line is the error, naming its line number). The result is sorted by timestamp (stable,
// so equal timestamps keep file order). Errors: InvalidArgument (a bad or too long line,
// an empty trace), DataLoss (the stream failed while reading).
Result<std::vector<TraceRequest>> ReadTrace(std::istream& in, const TraceLimits& limits);

// One trace line for `r` in the format above (no newline), keys in Mooncake's order;
// timestamps that are whole numbers of ms are written as integers.
std::string TraceLine(const TraceRequest& r);

}  // namespace ferry::bench
