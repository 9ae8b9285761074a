// `ferry bench serve`: a load generator for an OpenAI-compatible server. N client threads
// send M completion requests in total (prompt of P random byte-level token ids, exactly O
// output tokens via ignore_eos) and report throughput, time to first token and
// inter-token latency percentiles as a table and one JSON line. Bounded by --num-requests
// and --duration-limit.
#pragma once

#include <cstdint>
#include <string>

namespace ferry::bench {

struct ServeBenchOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string model;
  int concurrency = 4;
  int num_requests = 32;
  int prompt_len = 128;
  int output_len = 64;
  bool stream = false;
  int duration_limit_s = 600;
  uint64_t seed = 0;
};

// Runs it; returns the exit code.
int RunServeBench(const ServeBenchOptions& options);

}  // namespace ferry::bench
