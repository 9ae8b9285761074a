#include "connector/internal/connector_metrics.h"

#include <fmt/core.h>

namespace ferry::connector {

void ConnectorMetrics::ObserveTransferSeconds(double seconds) {
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  time_buckets[i]++;
  time_count++;
  time_sum_us += static_cast<uint64_t>(seconds * 1e6);
}

std::string ConnectorMetrics::Render() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
  };
  metric("ferry_kv_bytes_sent_total", "counter", "KV bytes written into decoders.",
         bytes_sent.load());
  metric("ferry_kv_bytes_received_total", "counter", "KV bytes received from prefillers.",
         bytes_received.load());
  metric("ferry_kv_transfer_descriptors_total", "counter",
         "Transfer requests issued after merging consecutive blocks.", descriptors.load());
  metric("ferry_kv_transfers_total", "counter", "KV transfers that completed.",
         transfers_ok.load());
  metric("ferry_kv_transfer_failures_total", "counter", "KV transfers that failed.",
         transfers_failed.load());
  metric("ferry_kv_expired_requests_total", "counter",
         "Prefill requests whose blocks were freed by the abort timeout.", expired_requests.load());
  metric("ferry_kv_requests_waiting", "gauge", "Decode requests waiting for remote KV.",
         requests_waiting.load());
  metric("ferry_kv_requests_kept", "gauge", "Prefill requests holding KV blocks for a decoder.",
         requests_kept.load());
  metric("ferry_kv_recomputed_total", "counter",
         "Decode requests that prefilled locally after a failed load.", recomputed.load());
  metric("ferry_kv_pulls_refused_total", "counter",
         "Decoder pulls refused because too many were waiting.", pulls_refused.load());
  metric("ferry_kv_unauthenticated_total", "counter",
         "Side-channel and bootstrap messages refused for a missing or bad authentication tag.",
         unauthenticated.load());
  metric("ferry_kv_bootstrap_refused_total", "counter",
         "Decode requests refused because they named a bootstrap server not allowed.",
         bootstrap_refused.load());
  metric("ferry_kv_unwritten_finish_total", "counter",
         "FINISH replies refused because the prefill's KV-written notification never came.",
         unwritten_finish.load());
  out +=
      "# HELP ferry_kv_transfer_seconds Time to move one request's KV blocks.\n"
      "# TYPE ferry_kv_transfer_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += time_buckets[i].load();
    out +=
        fmt::format("ferry_kv_transfer_seconds_bucket{{le=\"{}\"}} {}\n", kBuckets[i], cumulative);
  }
  cumulative += time_buckets[kBuckets.size()].load();
  out += fmt::format("ferry_kv_transfer_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
  out += fmt::format("ferry_kv_transfer_seconds_sum {}\n", time_sum_us.load() / 1e6);
  out += fmt::format("ferry_kv_transfer_seconds_count {}\n", time_count.load());
  return out;
}

}  // namespace ferry::connector
