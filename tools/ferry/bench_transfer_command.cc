// `ferry bench transfer`: flags for the transfer benchmark (bench/transfer/run_transfer_bench.h).
#include <memory>

#include "bench/transfer/run_transfer_bench.h"
#include "command.h"

namespace ferry::cli {

FERRY_REGISTER_COMMAND(
    bench_transfer, "bench transfer",
    "Measures transfer throughput and latency between two local processes",
    [](CLI::App& cmd) -> Runner {
      auto f = std::make_shared<bench::TransferBenchOptions>();
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
      cmd.add_option("--target-memory", f->target_memory,
                     "registered (the target's own memory; default) or managed "
                     "(AllocateManagedBuffer: shm peers map it)");
      cmd.add_option("--lifetime", f->lifetime_s, "Target role: exit after this many seconds");
      cmd.add_flag("--json", f->json, "Print only the JSON lines");
      return [f] { return bench::RunTransferBench(*f); };
    });

}  // namespace ferry::cli
