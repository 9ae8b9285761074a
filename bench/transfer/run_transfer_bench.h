// `ferry bench transfer`: throughput and per-request latency of the transfer engine
// between two processes on this machine.
//
//   ferry bench transfer --transport shm --op write --block-size 64K,1M,4M --duration 3
//   ferry bench transfer --role target --working-set 1G          # prints its segment name
//   ferry bench transfer --role initiator --target 127.0.0.1:40001 --transport tcp
//   ferry bench transfer --transport shm --target-memory managed --block-size 64K
//
// The default role "both" starts the target as a child process (this binary) and runs the
// initiator against it. Every result prints one human line and one JSON object line
// (--json: only the JSON lines). Blocks cycle through a working set larger than the
// caches (default 1 GiB) and every run ends with an integrity check (see transfer_bench.h).
#pragma once

#include <cstdint>
#include <string>

namespace ferry::bench {

struct TransferBenchOptions {
  std::string role = "both";
  std::string target;
  std::string op = "write";
  std::string block_sizes = "4M";
  int batch_size = 1;
  int threads = 1;
  double duration_s = 2;
  std::string transport = "auto";
  std::string params;
  std::string working_set = "1G";
  std::string target_memory = "registered";  // or "managed" (AllocateManagedBuffer)
  int lifetime_s = 900;
  bool json = false;
};

// Runs it; returns the exit code.
int RunTransferBench(const TransferBenchOptions& options);

}  // namespace ferry::bench
