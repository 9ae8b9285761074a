#include "bench/trace/trace_bench.h"

#include <cmath>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench/common/percentile.h"
#include "bench/trace/prefix_hit_counters.h"
#include "bench/trace/prometheus_text.h"
#include "bench/trace/request_trace.h"
#include "bench/trace/trace_replayer.h"

namespace ferry::bench {
namespace {

using nlohmann::json;

// GET BASE/metrics (or URL itself when it already ends in /metrics) and the prefix
// counters in it. Errors: Unavailable (no answer, not 200), NotFound / InvalidArgument
// from the parse.
Result<PrefixHitCounters> ScrapePrefixCounters(const std::string& url) {
  std::string base = url;
  std::string path = "/metrics";
  const size_t scheme = base.find("://");
  const size_t slash = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash != std::string::npos) {
    std::string rest = base.substr(slash);
    base.resize(slash);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    path = rest.size() >= 8 && rest.compare(rest.size() - 8, 8, "/metrics") == 0
               ? rest
               : rest + "/metrics";
  }
  httplib::Client cli(base);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(10, 0);
  auto res = cli.Get(path);
  if (!res) {
    return UnavailableError(
        fmt::format("GET {}{}: {}", base, path, httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    return UnavailableError(fmt::format("GET {}{}: HTTP {}", base, path, res->status));
  }
  FERRY_ASSIGN_OR_RETURN(PrometheusSums sums, ParsePrometheusText(res->body));
  Result<PrefixHitCounters> c = PrefixHitCounters::FromSums(sums);
  if (!c.ok()) return c.status().WithContext(url);
  return c;
}

// The counters summed over every URL. Errors: the first URL's that failed.
Result<PrefixHitCounters> ScrapeAll(const std::vector<std::string>& urls) {
  PrefixHitCounters sum;
  for (const auto& url : urls) {
    FERRY_ASSIGN_OR_RETURN(PrefixHitCounters c, ScrapePrefixCounters(url));
    sum += c;
  }
  return sum;
}

}  // namespace

int RunTraceBench(const TraceBenchOptions& f) {
  std::ifstream in(f.trace);
  if (!in) {
    fmt::print(stderr, "ferry bench trace: cannot open trace {}\n", f.trace);
    return 2;
  }
  TraceLimits limits;
  limits.max_requests = f.max_requests;
  Result<std::vector<TraceRequest>> trace = ReadTrace(in, limits);
  if (!trace.ok()) {
    fmt::print(stderr, "ferry bench trace: {}: {}\n", f.trace, trace.status().message());
    return 2;
  }
  std::optional<PrefixHitCounters> before;
  if (!f.metrics_urls.empty()) {
    Result<PrefixHitCounters> c = ScrapeAll(f.metrics_urls);
    if (!c.ok()) {
      fmt::print(stderr, "ferry bench trace: --metrics-url: {}\n", c.status().message());
      return 2;
    }
    before = *c;
  }

  const ReplayResult r = ReplayTrace(*trace, f.replay);

  std::optional<PrefixHitCounters> used;
  std::string metrics_error;
  if (before) {
    Result<PrefixHitCounters> after = ScrapeAll(f.metrics_urls);
    if (after.ok()) {
      used = *after - *before;
    } else {
      metrics_error = after.status().message();
    }
  }

  std::vector<double> ttft, tbt, e2e;
  int64_t ok = 0, attained = 0, output_tokens = 0, prompt_tokens = 0;
  std::string first_error;
  for (const ReplaySample& s : r.samples) {
    if (!s.ok) {
      if (first_error.empty()) first_error = s.error;
      continue;
    }
    ++ok;
    output_tokens += s.output_tokens;
    prompt_tokens += s.prompt_tokens;
    ttft.push_back(s.ttft_ms);
    e2e.push_back(s.e2e_ms);
    tbt.insert(tbt.end(), s.tbt_ms.begin(), s.tbt_ms.end());
    if (s.ttft_ms <= f.ttft_slo_ms && s.mean_tbt_ms <= f.tbt_slo_ms) ++attained;
  }
  const int64_t total = static_cast<int64_t>(r.samples.size());
  const int64_t failed = total - ok;
  const double slo = total > 0 ? static_cast<double>(attained) / total : 0;
  const double tps = r.wall_s > 0 ? output_tokens / r.wall_s : 0;

  const TracePromptBuilder builder(f.replay.prompt);
  fmt::print("ferry bench trace: {} -> {} (length scale {}, block {} tokens, time scale {})\n",
             f.trace, f.replay.url, f.replay.prompt.length_scale, builder.block_tokens(),
             f.replay.time_scale);
  fmt::print("  requests      {:>10} ok {:>6} failed   in {:.2f} s\n", ok, failed, r.wall_s);
  fmt::print("  tokens        {:>10} prompt {:>8} output   {:.1f} output tok/s\n", prompt_tokens,
             output_tokens, tps);
  fmt::print("  {:<12}{:>10}{:>10}{:>10}   (ms)\n", "", "p50", "p90", "p99");
  auto row = [](const char* name, const std::vector<double>& v) {
    fmt::print("  {:<12}{:>10.2f}{:>10.2f}{:>10.2f}\n", name, Percentile(v, 50), Percentile(v, 90),
               Percentile(v, 99));
  };
  row("TTFT", ttft);
  row("TBT", tbt);
  row("e2e", e2e);
  fmt::print("  SLO           {:>9.1f}% of requests with TTFT <= {} ms and mean TBT <= {} ms\n",
             slo * 100, f.ttft_slo_ms, f.tbt_slo_ms);
  if (used) {
    fmt::print(
        "  prefix hits   local {:.1f}%  pool {:.1f}%  total {:.1f}%  of {:.0f} prompt tokens; "
        "{:.0f} computed\n",
        used->local_hit_rate() * 100, used->pool_hit_rate() * 100, used->total_hit_rate() * 100,
        used->prompt, used->computed);
  }
  if (!metrics_error.empty()) fmt::print("  metrics: {}\n", metrics_error);
  if (!first_error.empty()) fmt::print("  first error: {}\n", first_error);

  json line = {{"bench", "trace"},
               {"url", f.replay.url},
               {"trace", f.trace},
               {"requests", total},
               {"ok", ok},
               {"failed", failed},
               {"duration_s", r.wall_s},
               {"length_scale", f.replay.prompt.length_scale},
               {"block_tokens", builder.block_tokens()},
               {"time_scale", f.replay.time_scale},
               {"prompt_tokens", prompt_tokens},
               {"output_tokens", output_tokens},
               {"output_tok_per_s", tps},
               {"ttft_ms_p50", Percentile(ttft, 50)},
               {"ttft_ms_p90", Percentile(ttft, 90)},
               {"ttft_ms_p99", Percentile(ttft, 99)},
               {"tbt_ms_p50", Percentile(tbt, 50)},
               {"tbt_ms_p90", Percentile(tbt, 90)},
               {"tbt_ms_p99", Percentile(tbt, 99)},
               {"e2e_ms_p50", Percentile(e2e, 50)},
               {"e2e_ms_p99", Percentile(e2e, 99)},
               {"ttft_slo_ms", f.ttft_slo_ms},
               {"tbt_slo_ms", f.tbt_slo_ms},
               {"slo_attainment", slo}};
  if (used) {
    line["server_prompt_tokens"] = used->prompt;
    line["local_hit_tokens"] = used->local;
    line["pool_hit_tokens"] = used->pool;
    line["prefill_tokens_computed"] = used->computed;
    line["local_hit_rate"] = used->local_hit_rate();
    line["pool_hit_rate"] = used->pool_hit_rate();
    line["total_hit_rate"] = used->total_hit_rate();
  }
  if (!first_error.empty()) line["first_error"] = first_error;
  fmt::print("{}\n", line.dump());
  return failed == 0 ? 0 : 1;
}

}  // namespace ferry::bench
