// `ferry bench store`: the KV cache pool's put and get against the raw transfer engine,
// measured in the same run on the same transport.
//
//   ferry bench store [--protocol tcp] [--sizes 4K,64K,1M,4M] [--batches 1,32]
//                     [--seconds 1] [--json FILE]
//
// Processes: this one (the master, in-process, and the client), a `ferry store member`
// child that lends its DRAM to the pool (so every put and get crosses a process boundary),
// and, for the baseline, a `ferry bench transfer --role target` child that the raw engine
// writes into and reads from with batches of the same size. For each value size and batch:
// put and get, copying (Put/Get: a std::string per value) and zero-copy (PutFrom/GetInto on
// registered memory): GB/s, objects/s, p50/p99 per call; then the ratio store/raw. Also
// BatchExist over 32 keys. The master runs with a 2 s read lease (the default is 10 s) so
// that space removed between cases comes back sooner; nothing else differs from defaults.
#pragma once

#include <string>

#include "ferry/status.h"

namespace ferry::bench {

struct StoreBenchOptions {
  std::string protocol = "tcp";
  std::string sizes = "4K,64K,1M,4M";
  std::string batches = "1,32";
  double seconds = 1.0;
  std::string segment = "1GB";
  std::string json;
};

// Runs every case and prints the table (and --json). Errors: a bad option, or a part
// (master, member, target) that did not start.
Status RunStoreBench(const StoreBenchOptions& options);

}  // namespace ferry::bench
