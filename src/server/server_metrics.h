// ServerMetrics: the Prometheus metrics of `ferry serve` (GET /metrics).
//
//   ServerMetrics metrics;
//   RequestTimer timer(&metrics);                 // per request, at arrival
//   timer.OnOutput(out);                          // per engine output
//   std::string text = metrics.Render(engine.Stats());
//
// Exposed (text format 0.0.4):
//   ferry_num_requests_running / _waiting        gauges (from the engine)
//   ferry_kv_blocks_used / _total, ferry_kv_cache_usage_ratio   gauges
//   ferry_prompt_tokens_total, ferry_generation_tokens_total    counters
//   ferry_prefix_cache_hit_tokens_total, ferry_num_preemptions_total   counters
//   ferry_request_success_total{finished_reason="stop|length|abort"}   counter
//   ferry_time_to_first_token_seconds, ferry_inter_token_latency_seconds,
//   ferry_e2e_request_latency_seconds             histograms
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/mutex.h"
#include "engine/llm_engine.h"
#include "engine/request_stream.h"

namespace ferry::server {

class ServerMetrics {
 public:
  ServerMetrics();

  void ObserveTimeToFirstToken(double seconds) { ttft_->Observe(seconds); }
  void ObserveInterTokenLatency(double seconds) { itl_->Observe(seconds); }
  void ObserveFinished(const std::string& reason, double e2e_seconds);

  // Copies the engine's gauges and counters in and renders every metric.
  std::string Render(const engine::EngineStats& stats);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* blocks_used_;
  prometheus::Gauge* blocks_held_;
  prometheus::Gauge* blocks_total_;
  prometheus::Gauge* cache_usage_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* prefix_hits_;
  prometheus::Counter* connector_hits_;
  prometheus::Counter* prompt_computed_;
  prometheus::Counter* preemptions_;
  prometheus::Family<prometheus::Counter>* success_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* e2e_;

  Mutex mu_;
  engine::EngineStats last_ FERRY_GUARDED_BY(mu_);  // totals already added to the counters
};

// Turns one request's engine outputs into TTFT / ITL / e2e observations.
// Thread-compatible (one per request).
class RequestTimer {
 public:
  explicit RequestTimer(ServerMetrics* metrics);
  void OnOutput(const engine::RequestOutput& out);

 private:
  ServerMetrics* metrics_;
  int64_t arrival_ns_;
  int64_t last_token_ns_ = 0;
};

}  // namespace ferry::server
