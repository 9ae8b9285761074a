// `ferry bench trace`: flags for the trace replayer (bench/trace/trace_bench.h).
#include <memory>

#include "bench/trace/trace_bench.h"
#include "command.h"

FERRY_REGISTER_COMMAND(
    bench_trace, "bench trace",
    "Replays a Mooncake-format request trace (JSONL) against an OpenAI-compatible server: "
    "TTFT, TBT, SLO attainment and prefix hit rates",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto f = std::make_shared<ferry::bench::TraceBenchOptions>();
      auto& r = f->replay;
      cmd.footer(
          "Trace lines: {\"timestamp\": ms, \"input_length\": n, \"output_length\": n, "
          "\"hash_ids\": [ids]}; each hash id is one block of --trace-block-tokens tokens, "
          "equal ids equal content. Prompts are byte-level token ids generated from the hash "
          "ids, so shared ids give shared prefixes. Requests are streamed POST "
          "/v1/completions with ignore_eos; TTFT is measured from the scheduled send time. "
          "`ferry bench make-trace` writes a synthetic multi-turn trace.");
      cmd.add_option("--trace", f->trace, "Trace file (JSONL, Mooncake format)")
          ->required()
          ->check(CLI::ExistingFile);
      cmd.add_option("--url", r.url, "Server base URL")->capture_default_str();
      cmd.add_option("--model", r.model, "Model name to send (default: none)");
      cmd.add_option("--trace-block-tokens", r.prompt.trace_block_tokens,
                     "Tokens per hash id in the trace")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str();
      cmd.add_option("--length-scale", r.prompt.length_scale,
                     "Scales input length, output length and block size")
          ->check(CLI::Range(1e-6, 1e6))
          ->capture_default_str();
      cmd.add_option("--max-prompt-tokens", r.prompt.max_prompt_tokens,
                     "Cap on prompt tokens after scaling (0: none)")
          ->check(CLI::Range(0, 1 << 24))
          ->capture_default_str();
      cmd.add_option("--time-scale", r.time_scale,
                     "Multiplies the trace's timestamps (0.5: twice as fast)")
          ->check(CLI::Range(0.0, 1e6))
          ->capture_default_str();
      cmd.add_option("--max-concurrency", r.max_concurrency,
                     "Requests in flight at most; later ones wait (and the wait counts in TTFT)")
          ->check(CLI::Range(1, 4096))
          ->capture_default_str();
      cmd.add_option("--max-requests", f->max_requests,
                     "Replay only the first N requests of the trace (0: all)")
          ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
          ->capture_default_str();
      cmd.add_option("--duration-limit", r.duration_limit_s,
                     "Send nothing after this many seconds and cut off what still runs")
          ->check(CLI::Range(1.0, 86400.0))
          ->capture_default_str();
      cmd.add_option("--ttft-slo-ms", f->ttft_slo_ms, "SLO on time to first token (ms)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      cmd.add_option("--tbt-slo-ms", f->tbt_slo_ms,
                     "SLO on a request's mean time between tokens (ms)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      cmd.add_option("--metrics-url", f->metrics_urls,
                     "Server base URL whose /metrics counts prefix-cache and KV-pool hits "
                     "(repeatable; summed; default: none, no hit rates)");
      cmd.add_option("--seed", r.prompt.seed, "Seed of the generated token ids")
          ->capture_default_str();
      return [f] { return ferry::bench::RunTraceBench(*f); };
    });
