#include "server/server_metrics.h"

#include <prometheus/text_serializer.h>

#include "common/deadline.h"
#include "common/mutex.h"

namespace ferry::server {
namespace {

using prometheus::Histogram;

Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0};
}

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  auto histogram = [&](const char* name, const char* help) {
    return &prometheus::BuildHistogram()
                .Name(name)
                .Help(help)
                .Register(*registry_)
                .Add({}, LatencyBuckets());
  };
  running_ = gauge("ferry_num_requests_running", "Requests holding KV blocks and running.");
  waiting_ = gauge("ferry_num_requests_waiting", "Requests waiting to be scheduled.");
  blocks_used_ = gauge("ferry_kv_blocks_used", "KV cache blocks referenced by requests.");
  blocks_total_ = gauge("ferry_kv_blocks_total", "KV cache blocks in the pool.");
  blocks_held_ = gauge("ferry_kv_blocks_held",
                       "KV blocks held after a failed remote KV load, until late writes of "
                       "that transfer can no longer arrive.");
  cache_usage_ = gauge("ferry_kv_cache_usage_ratio", "Fraction of KV blocks in use (0..1).");
  prompt_tokens_ = counter("ferry_prompt_tokens_total", "Prompt tokens of admitted requests.");
  generation_tokens_ = counter("ferry_generation_tokens_total", "Generated tokens.");
  prefix_hits_ =
      counter("ferry_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.");
  connector_hits_ = counter("ferry_kv_connector_hit_tokens_total",
                            "Prompt tokens loaded by the KV connector (another instance or the "
                            "pool) instead of computed.");
  prompt_computed_ = counter("ferry_prompt_tokens_computed_total",
                             "Prompt tokens run through the model (recomputes included).");
  preemptions_ = counter("ferry_num_preemptions_total", "Requests preempted for lack of blocks.");
  success_ = &prometheus::BuildCounter()
                  .Name("ferry_request_success_total")
                  .Help("Finished requests by finish reason.")
                  .Register(*registry_);
  ttft_ = histogram("ferry_time_to_first_token_seconds", "Time to first token.");
  itl_ = histogram("ferry_inter_token_latency_seconds", "Time between generated tokens.");
  e2e_ = histogram("ferry_e2e_request_latency_seconds", "Request latency, arrival to finish.");
}

void ServerMetrics::ObserveFinished(const std::string& reason, double e2e_seconds) {
  success_->Add({{"finished_reason", reason}}).Increment();
  e2e_->Observe(e2e_seconds);
}

std::string ServerMetrics::Render(const engine::EngineStats& s) {
  {
    MutexLock lock(&mu_);
    running_->Set(s.num_running);
    waiting_->Set(s.num_waiting);
    blocks_used_->Set(s.kv_blocks_used);
    blocks_total_->Set(s.kv_blocks_total);
    blocks_held_->Set(s.kv_blocks_held);
    cache_usage_->Set(
        s.kv_blocks_total > 0 ? static_cast<double>(s.kv_blocks_used) / s.kv_blocks_total : 0.0);
    auto add = [](prometheus::Counter* c, int64_t now, int64_t before) {
      if (now > before) c->Increment(static_cast<double>(now - before));
    };
    add(prompt_tokens_, s.prompt_tokens_total, last_.prompt_tokens_total);
    add(generation_tokens_, s.generation_tokens_total, last_.generation_tokens_total);
    add(prefix_hits_, s.prefix_cache_hit_tokens, last_.prefix_cache_hit_tokens);
    add(connector_hits_, s.connector_hit_tokens, last_.connector_hit_tokens);
    add(prompt_computed_, s.prompt_tokens_computed, last_.prompt_tokens_computed);
    add(preemptions_, s.num_preemptions, last_.num_preemptions);
    last_ = s;
  }
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

RequestTimer::RequestTimer(ServerMetrics* metrics) : metrics_(metrics), arrival_ns_(NowNanos()) {}

void RequestTimer::OnOutput(const engine::RequestOutput& out) {
  if (!out.token_ids.empty()) {
    if (last_token_ns_ == 0) {
      metrics_->ObserveTimeToFirstToken(static_cast<double>(out.time_ns - arrival_ns_) * 1e-9);
    } else {
      metrics_->ObserveInterTokenLatency(static_cast<double>(out.time_ns - last_token_ns_) * 1e-9);
    }
    last_token_ns_ = out.time_ns;
  }
  if (out.finished) {
    metrics_->ObserveFinished(out.finish_reason,
                              static_cast<double>(out.time_ns - arrival_ns_) * 1e-9);
  }
}

}  // namespace ferry::server
