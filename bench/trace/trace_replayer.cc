#include "bench/trace/trace_replayer.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench/trace/completion_stream.h"
#include "common/deadline.h"
#include "common/thread_pool.h"

namespace ferry::bench {
namespace {

double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Sends one request and waits for its streamed answer, or until `deadline`.
ReplaySample RunOne(const TraceRequest& r, int64_t index, SteadyClock::time_point scheduled,
                    Deadline deadline, const TracePromptBuilder& builder, const ReplayOptions& o) {
  ReplaySample s;
  if (deadline.Expired()) {
    s.error = "not sent before --duration-limit";
    return s;
  }
  const std::vector<int> prompt = builder.Prompt(r, index);
  s.prompt_tokens = static_cast<int64_t>(prompt.size());
  nlohmann::json body = {{"prompt", prompt}, {"max_tokens", builder.OutputTokens(r)},
                         {"temperature", 0}, {"ignore_eos", true},
                         {"stream", true},   {"stream_options", {{"include_usage", true}}}};
  if (!o.model.empty()) body["model"] = o.model;

  httplib::Client cli(o.url);
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline.Remaining());
  cli.set_connection_timeout(o.connect_timeout_s, 0);
  cli.set_read_timeout(std::max<int64_t>(1, left.count() + 1), 0);
  cli.set_write_timeout(30, 0);

  CompletionStream stream;
  SteadyClock::time_point first{}, last{};
  bool cut_off = false;
  auto on_token = [&] {
    const auto now = SteadyClock::now();
    if (stream.token_events() == 1) {
      first = now;
      s.ttft_ms = Ms(now - scheduled);
    } else {
      s.tbt_ms.push_back(Ms(now - last));
    }
    last = now;
  };
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (deadline.Expired()) {
      cut_off = true;
      return false;
    }
    return stream.Feed(std::string_view(data, len), on_token);
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = cli.send(req, res, err);
  s.e2e_ms = Ms(SteadyClock::now() - scheduled);
  s.output_tokens =
      stream.completion_tokens() >= 0 ? stream.completion_tokens() : stream.token_events();
  if (stream.token_events() > 1) s.mean_tbt_ms = Ms(last - first) / (stream.token_events() - 1);

  if (cut_off) {
    s.error = "cut off at --duration-limit";
  } else if (!stream.error().empty()) {
    s.error = "server error: " + stream.error();
  } else if (!sent) {
    s.error = "HTTP: " + httplib::to_string(err);
  } else if (res.status != 200) {
    s.error = "HTTP " + std::to_string(res.status) + ": " + res.body.substr(0, 200);
  } else if (stream.token_events() == 0) {
    s.error = "no tokens streamed";
  } else if (!stream.done()) {
    s.error = "stream ended without [DONE]";
  } else {
    s.ok = true;
  }
  return s;
}

}  // namespace

ReplayResult ReplayTrace(const std::vector<TraceRequest>& trace, const ReplayOptions& o) {
  ReplayResult result;
  result.samples.resize(trace.size());
  const TracePromptBuilder builder(o.prompt);
  const auto start = SteadyClock::now();
  const Deadline deadline =
      Deadline::At(start + std::chrono::duration_cast<SteadyClock::duration>(
                               std::chrono::duration<double>(o.duration_limit_s)));
  {
    ThreadPool pool("trace-replay", std::max(1, o.max_concurrency));
    for (size_t i = 0; i < trace.size(); ++i) {
      const auto offset = std::chrono::duration_cast<SteadyClock::duration>(
          std::chrono::duration<double, std::milli>(trace[i].timestamp_ms * o.time_scale));
      const auto scheduled = start + offset;
      result.samples[i].scheduled_ms = Ms(offset);
      if (scheduled >= deadline.when()) {
        for (size_t k = i; k < trace.size(); ++k) {
          result.samples[k].error = "not sent before --duration-limit";
        }
        break;
      }
      std::this_thread::sleep_until(scheduled);
      pool.Post([&, i, scheduled] {
        const double due = result.samples[i].scheduled_ms;
        result.samples[i] =
            RunOne(trace[i], static_cast<int64_t>(i), scheduled, deadline, builder, o);
        result.samples[i].scheduled_ms = due;
      });
    }
  }  // ~ThreadPool runs every posted request, then joins
  result.wall_s = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return result;
}

}  // namespace ferry::bench
