// `ferry bench transfer`: throughput and per-request latency of the transfer engine
// between two processes on this machine.
//
//   ferry bench transfer --transport shm --op write --block-size 64K,1M,4M --duration 3
//   ferry bench transfer --role target --working-set 1G          # prints its segment name
//   ferry bench transfer --role initiator --target 127.0.0.1:40001 --transport tcp
//
// The default role "both" starts the target as a child process (this binary) and runs the
// initiator against it. Every result prints one human line and one JSON object line
// (--json: only the JSON lines). Blocks cycle through a working set larger than the
// caches (default 1 GiB) and every run ends with an integrity check (see transfer_bench.h).
#include <fmt/core.h>

#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "common/byte_size.h"
#include "transfer_bench.h"

namespace ferry::cli {
namespace {

struct Flags {
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
  int lifetime_s = 900;
  bool json = false;
};

int Run(const Flags& f) {
  auto ws = ParseByteSize(f.working_set);
  if (ws.ok() && *ws == 0) ws = InvalidArgumentError("the working set must not be empty");
  if (!ws.ok()) {
    fmt::print(stderr, "--working-set: {}\n", ws.status().message());
    return 2;
  }
  if (f.role == "target") {
    return RunTargetRole(*ws, f.transport == "tcp" ? "tcp" : "auto",
                         std::chrono::seconds(f.lifetime_s));
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
    auto t = TargetProcess::Start(*ws, "auto");
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

}  // namespace

FERRY_REGISTER_COMMAND(
    bench_transfer, "bench transfer",
    "Measures transfer throughput and latency between two local processes",
    [](CLI::App& cmd) -> Runner {
      auto f = std::make_shared<Flags>();
      cmd.add_option("--role", f->role, "both (default), target or initiator");
      cmd.add_option("--target", f->target, "Target segment host:port (role initiator)");
      cmd.add_option("--op", f->op, "read or write (default write)");
      cmd.add_option("--block-size", f->block_sizes,
                     "Bytes per request, e.g. 4K, 64K, 1M, 4M; a comma list runs each");
      cmd.add_option("--batch-size", f->batch_size, "Requests per batch (default 1)");
      cmd.add_option("--threads", f->threads, "Initiator threads (default 1)");
      cmd.add_option("--duration", f->duration_s, "Seconds per block size (default 2)");
      cmd.add_option("--transport", f->transport, "auto, tcp, shm or fault:tcp (default auto)");
      cmd.add_option("--transport-params", f->params, "e.g. drop=0.01,delay_ms=1,seed=7");
      cmd.add_option("--working-set", f->working_set,
                     "Bytes cycled through on each side (default 1G: larger than caches)");
      cmd.add_option("--lifetime", f->lifetime_s, "Target role: exit after this many seconds");
      cmd.add_flag("--json", f->json, "Print only the JSON lines");
      return [f] { return Run(*f); };
    });

}  // namespace ferry::cli
