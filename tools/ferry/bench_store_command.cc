// `ferry bench store`: flags for the pool benchmark (bench/store/store_bench.h).
#include <fmt/core.h>

#include <memory>

#include "bench/store/store_bench.h"
#include "command.h"
#include "common/log.h"

namespace ferry::cli {

FERRY_REGISTER_COMMAND(
    bench_store, "bench store",
    "Pool put/get (copying and zero-copy) against the raw transfer engine, same run",
    [](CLI::App& cmd) -> Runner {
      auto f = std::make_shared<bench::StoreBenchOptions>();
      cmd.add_option("--protocol", f->protocol, "tcp or shm")->capture_default_str();
      cmd.add_option("--sizes", f->sizes, "Value sizes, comma-separated")->capture_default_str();
      cmd.add_option("--batches", f->batches, "Objects per call, comma-separated")
          ->capture_default_str();
      cmd.add_option("--seconds", f->seconds, "Per case")->capture_default_str();
      cmd.add_option("--segment", f->segment, "DRAM the member lends")->capture_default_str();
      cmd.add_option("--json", f->json, "Also write the figures as JSON here");
      return [f] {
        InitLoggingFromEnv();
        Status s = bench::RunStoreBench(*f);
        if (!s.ok()) {
          fmt::print(stderr, "ferry bench store: {}\n", s.ToString());
          return 1;
        }
        return 0;
      };
    });

}  // namespace ferry::cli
