#include "bench/serve/serve_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/core.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench/common/percentile.h"
#include "common/deadline.h"

namespace ferry::bench {
namespace {

using nlohmann::json;

// obj[key] when obj is an object holding a value of T's JSON type; `fallback` otherwise
// (a server's odd reply is an error for that request, never an exception).
template <typename T>
T FieldOr(const json& obj, const char* key, T fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->get<std::string>() : fallback;
  } else {
    return it->is_number_integer() ? it->template get<T>() : fallback;
  }
}

struct Sample {
  bool ok = false;
  double e2e_s = 0;
  double ttft_s = -1;
  std::vector<double> itl_s;
  int64_t output_tokens = 0;
  std::string error;
};

double Seconds(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Sample RunOne(httplib::Client& cli, const ServeBenchOptions& f, int index) {
  std::mt19937 rng(static_cast<uint32_t>(f.seed * 1000003 + index));
  std::vector<int> prompt(f.prompt_len);
  for (int& t : prompt) t = static_cast<int>(rng() % 256);
  json body = {{"prompt", prompt},
               {"max_tokens", f.output_len},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", f.stream}};
  if (!f.model.empty()) body["model"] = f.model;
  if (f.stream) body["stream_options"] = {{"include_usage", true}};

  Sample s;
  const auto start = SteadyClock::now();
  auto last = start;
  std::string buffer;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  if (f.stream) {
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      buffer.append(data, len);
      for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
        std::string event = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
        json j = json::parse(event.substr(6), nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        if (j.contains("error")) s.error = FieldOr(j["error"], "message", std::string("error"));
        if (j.contains("usage")) s.output_tokens = FieldOr(j["usage"], "completion_tokens", 0);
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) continue;
        if (FieldOr(j["choices"][0], "text", std::string()).empty()) continue;
        const auto now = SteadyClock::now();
        if (s.ttft_s < 0) {
          s.ttft_s = Seconds(start, now);
        } else {
          s.itl_s.push_back(Seconds(last, now));
        }
        last = now;
      }
      return true;
    };
  }
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = cli.send(req, res, err);
  s.e2e_s = Seconds(start, SteadyClock::now());
  if (!sent) {
    s.error = httplib::to_string(err);
    return s;
  }
  if (res.status != 200) {
    s.error = "HTTP " + std::to_string(res.status) + ": " + res.body.substr(0, 200);
    return s;
  }
  if (!f.stream) {
    json j = json::parse(res.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("usage")) {
      s.error = "unparseable response";
      return s;
    }
    s.output_tokens = FieldOr(j["usage"], "completion_tokens", 0);
  }
  s.ok = s.error.empty();
  return s;
}

}  // namespace

int RunServeBench(const ServeBenchOptions& f) {
  std::vector<Sample> samples(f.num_requests);
  std::atomic<int> next{0};
  const Deadline deadline = Deadline::In(std::chrono::seconds(f.duration_limit_s));
  const auto start = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < f.concurrency; ++t) {
    threads.emplace_back([&] {
      httplib::Client cli(f.url);
      cli.set_read_timeout(std::max(1, f.duration_limit_s), 0);
      cli.set_connection_timeout(5, 0);
      for (int i; (i = next.fetch_add(1)) < f.num_requests && !deadline.Expired();) {
        samples[i] = RunOne(cli, f, i);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = Seconds(start, SteadyClock::now());

  std::vector<double> ttft, itl, e2e;
  int64_t ok = 0, tokens = 0;
  std::string first_error;
  for (const auto& s : samples) {
    if (!s.ok) {
      if (first_error.empty() && !s.error.empty()) first_error = s.error;
      continue;
    }
    ++ok;
    tokens += s.output_tokens;
    e2e.push_back(s.e2e_s * 1e3);
    if (s.ttft_s >= 0) ttft.push_back(s.ttft_s * 1e3);
    for (double x : s.itl_s) itl.push_back(x * 1e3);
  }
  const int64_t failed = f.num_requests - ok;
  const double rps = ok / wall, tps = tokens / wall;
  fmt::print("ferry bench serve: {} (concurrency {}, prompt {}, output {}, {})\n", f.url,
             f.concurrency, f.prompt_len, f.output_len, f.stream ? "streaming" : "non-streaming");
  fmt::print("  requests      {:>10} ok {:>6} failed   in {:.2f} s\n", ok, failed, wall);
  fmt::print("  throughput    {:>10.2f} req/s {:>10.1f} output tok/s\n", rps, tps);
  fmt::print("  {:<12}{:>10}{:>10}{:>10}   (ms)\n", "", "p50", "p90", "p99");
  auto row = [](const char* name, const std::vector<double>& v) {
    fmt::print("  {:<12}{:>10.2f}{:>10.2f}{:>10.2f}\n", name, Percentile(v, 50), Percentile(v, 90),
               Percentile(v, 99));
  };
  if (f.stream) row("TTFT", ttft);
  if (f.stream) row("ITL", itl);
  row("latency", e2e);
  if (!first_error.empty()) fmt::print("  first error: {}\n", first_error);
  json line = {{"bench", "serve"},
               {"url", f.url},
               {"concurrency", f.concurrency},
               {"num_requests", f.num_requests},
               {"prompt_len", f.prompt_len},
               {"output_len", f.output_len},
               {"stream", f.stream},
               {"ok", ok},
               {"failed", failed},
               {"duration_s", wall},
               {"req_per_s", rps},
               {"output_tok_per_s", tps},
               {"ttft_ms_p50", Percentile(ttft, 50)},
               {"ttft_ms_p90", Percentile(ttft, 90)},
               {"ttft_ms_p99", Percentile(ttft, 99)},
               {"itl_ms_p50", Percentile(itl, 50)},
               {"itl_ms_p90", Percentile(itl, 90)},
               {"itl_ms_p99", Percentile(itl, 99)},
               {"latency_ms_p50", Percentile(e2e, 50)},
               {"latency_ms_p99", Percentile(e2e, 99)}};
  fmt::print("{}\n", line.dump());
  return failed == 0 ? 0 : 1;
}

}  // namespace ferry::bench
