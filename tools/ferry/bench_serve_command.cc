// `ferry bench serve`: flags for the OpenAI-server load generator (bench/serve/serve_bench.h).
#include <memory>

#include "bench/serve/serve_bench.h"
#include "command.h"

FERRY_REGISTER_COMMAND(bench_serve, "bench serve",
                       "Load-tests an OpenAI-compatible server (throughput, TTFT, ITL)",
                       [](CLI::App& cmd) -> ferry::cli::Runner {
                         auto f = std::make_shared<ferry::bench::ServeBenchOptions>();
                         cmd.add_option("--url", f->url, "Server base URL")->capture_default_str();
                         cmd.add_option("--model", f->model, "Model name to send (default: none)");
                         cmd.add_option("--concurrency", f->concurrency, "Client threads")
                             ->check(CLI::Range(1, 1024))
                             ->capture_default_str();
                         cmd.add_option("--num-requests", f->num_requests, "Requests in total")
                             ->check(CLI::Range(1, 1000000))
                             ->capture_default_str();
                         cmd.add_option("--prompt-len", f->prompt_len, "Prompt tokens")
                             ->check(CLI::Range(1, 1000000))
                             ->capture_default_str();
                         cmd.add_option("--output-len", f->output_len, "Output tokens")
                             ->check(CLI::Range(1, 1000000))
                             ->capture_default_str();
                         cmd.add_flag("--stream", f->stream, "Stream (measures TTFT and ITL)");
                         cmd.add_option("--duration-limit", f->duration_limit_s,
                                        "Stop issuing requests after this many seconds")
                             ->check(CLI::Range(1, 86400))
                             ->capture_default_str();
                         cmd.add_option("--seed", f->seed, "Prompt seed")->capture_default_str();
                         return [f] { return ferry::bench::RunServeBench(*f); };
                       });
