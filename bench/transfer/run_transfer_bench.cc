#include "bench/transfer/run_transfer_bench.h"

#include <fmt/core.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/transfer/transfer_bench.h"
#include "common/byte_size.h"

namespace ferry::bench {
int RunTransferBench(const TransferBenchOptions& f) {
  auto ws = ParseByteSize(f.working_set);
  if (ws.ok() && *ws == 0) ws = InvalidArgumentError("the working set must not be empty");
  if (!ws.ok()) {
    fmt::print(stderr, "--working-set: {}\n", ws.status().message());
    return 2;
  }
  auto memory = ParseTargetMemory(f.target_memory);
  if (!memory.ok()) {
    fmt::print(stderr, "--target-memory: {}\n", memory.status().message());
    return 2;
  }
  if (f.role == "target") {
    return RunTargetRole(*ws, f.transport == "tcp" ? "tcp" : "auto",
                         std::chrono::seconds(f.lifetime_s), *memory);
  }
  if (f.role != "initiator" && f.role != "both") {
    fmt::print(stderr, "--role must be target, initiator or both\n");
    return 2;
  }
  BenchConfig base;
  if (f.op != "read" && f.op != "write") {
    fmt::print(stderr, "--op must be read or write\n");
    return 2;
  }
  base.op = f.op == "read" ? TransferOp::kRead : TransferOp::kWrite;
  base.batch_size = f.batch_size;
  base.threads = f.threads;
  base.duration_s = f.duration_s;
  std::vector<uint64_t> sizes;
  for (size_t start = 0; start < f.block_sizes.size();) {
    size_t comma = std::min(f.block_sizes.find(',', start), f.block_sizes.size());
    auto b = ParseByteSize(f.block_sizes.substr(start, comma - start));
    if (b.ok() && *b == 0) b = InvalidArgumentError("a block size must be > 0");
    if (!b.ok()) {
      fmt::print(stderr, "--block-size: {}\n", b.status().message());
      return 2;
    }
    sizes.push_back(*b);
    start = comma + 1;
  }

  std::unique_ptr<TargetProcess> child;
  std::string target = f.target;
  if (f.role == "both") {
    // The target always offers shm (auto) so that the initiator's choice decides.
    auto t = TargetProcess::Start(*ws, "auto", *memory);
    if (!t.ok()) {
      fmt::print(stderr, "cannot start the target: {}\n", t.status().ToString());
      return 1;
    }
    child = std::move(*t);
    target = child->segment();
  } else if (target.empty()) {
    fmt::print(stderr, "--role initiator needs --target host:port\n");
    return 2;
  }
  auto init = BenchInitiator::Create(f.transport, f.params, target, *ws);
  if (!init.ok()) {
    fmt::print(stderr, "initiator: {}\n", init.status().ToString());
    return 1;
  }
  int rc = 0;
  for (uint64_t size : sizes) {
    BenchConfig c = base;
    c.block_size = size;
    auto r = (*init)->Run(c);
    if (!r.ok()) {
      fmt::print(stderr, "{} {} {}: {}\n", f.transport, f.op, FormatByteSize(size),
                 r.status().ToString());
      rc = 1;
      continue;
    }
    if (!f.json) fmt::print("{}\n", r->HumanLine());
    fmt::print("{}\n", r->JsonLine());
    std::fflush(stdout);
  }
  return rc;
}

}  // namespace ferry::bench
