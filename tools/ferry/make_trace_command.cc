// `ferry bench make-trace`: writes a synthetic multi-turn chat trace in the Mooncake trace
// format (multi_turn_trace.h explains the shape) to a file or stdout, for `ferry bench
// trace`.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "bench/trace/multi_turn_trace.h"
#include "bench/trace/request_trace.h"
#include "command.h"

namespace ferry::cli {
namespace {

using bench::MakeMultiTurnTrace;
using bench::MultiTurnTraceOptions;
using bench::TraceLine;
using bench::TraceRequest;

struct MakeTraceFlags {
  std::string output;  // empty: stdout
  MultiTurnTraceOptions options;
};

int RunMakeTrace(const MakeTraceFlags& f) {
  const std::vector<TraceRequest> trace = MakeMultiTurnTrace(f.options);
  std::string text;
  for (const TraceRequest& r : trace) {
    text += TraceLine(r);
    text += '\n';
  }
  if (f.output.empty() || f.output == "-") {
    fmt::print("{}", text);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  std::ofstream out(f.output, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    fmt::print(stderr, "ferry bench make-trace: cannot write {}\n", f.output);
    return 1;
  }
  fmt::print(stderr, "wrote {} requests ({} sessions x {} turns) to {}\n", trace.size(),
             f.options.sessions, f.options.turns, f.output);
  return 0;
}

}  // namespace
}  // namespace ferry::cli

FERRY_REGISTER_COMMAND(
    make_trace, "bench make-trace",
    "Writes a synthetic multi-turn chat trace (Mooncake JSONL format) for `ferry bench trace`",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto f = std::make_shared<ferry::cli::MakeTraceFlags>();
      auto& o = f->options;
      cmd.footer(
          "Every session starts with the same system-prompt blocks; each turn's hash_ids are "
          "the previous turn's, then new blocks for the previous answer, then new user "
          "blocks. Sessions arrive as a Poisson process; turns follow after the think time "
          "plus up to half of it as jitter. The same flags and --seed give the same trace.");
      cmd.add_option("--output,-o", f->output, "Output file (default: stdout)");
      cmd.add_option("--sessions", o.sessions, "Chat sessions")
          ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
          ->capture_default_str();
      cmd.add_option("--turns", o.turns, "Turns per session")
          ->check(CLI::Range(int64_t{1}, int64_t{1000}))
          ->capture_default_str();
      cmd.add_option("--system-prompt-blocks", o.system_prompt_blocks,
                     "Hash ids (blocks) of system prompt shared by every session")
          ->check(CLI::Range(int64_t{0}, int64_t{10000}))
          ->capture_default_str();
      cmd.add_option("--turn-input-blocks", o.turn_input_blocks, "New blocks per user message")
          ->check(CLI::Range(int64_t{0}, int64_t{10000}))
          ->capture_default_str();
      cmd.add_option("--output-length", o.output_length, "Output tokens per turn")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
          ->capture_default_str();
      cmd.add_option("--trace-block-tokens", o.block_tokens, "Tokens per hash id")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
          ->capture_default_str();
      cmd.add_option("--rate", o.rate, "Sessions started per second (Poisson)")
          ->check(CLI::Range(1e-6, 1e6))
          ->capture_default_str();
      cmd.add_option("--think-time-ms", o.think_time_ms, "Time between a session's turns (ms)")
          ->check(CLI::Range(0.0, 86400e3))
          ->capture_default_str();
      cmd.add_option("--seed", o.seed, "Random seed")->capture_default_str();
      return [f] { return ferry::cli::RunMakeTrace(*f); };
    });
