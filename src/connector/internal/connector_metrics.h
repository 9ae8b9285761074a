// ConnectorMetrics: the connector's counters, rendered in Prometheus text format.
// Thread safety: every member is atomic; Render may run concurrently with updates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace ferry::connector {

struct ConnectorMetrics {
  // Upper bounds (seconds) of the transfer-time histogram buckets; +Inf is implicit.
  static constexpr std::array<double, 10> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,  0.05,  0.1,    0.5,   2.5};
  std::atomic<uint64_t> bytes_sent{0};      // producer: KV bytes written to decoders
  std::atomic<uint64_t> bytes_received{0};  // consumer: KV bytes that arrived
  std::atomic<uint64_t> descriptors{0};     // transfer requests after run merging
  std::atomic<uint64_t> transfers_ok{0};
  std::atomic<uint64_t> transfers_failed{0};   // either side
  std::atomic<uint64_t> expired_requests{0};   // producer: freed by the abort timeout
  std::atomic<int64_t> requests_waiting{0};    // consumer: waiting for remote KV
  std::atomic<int64_t> requests_kept{0};       // producer: prompts whose blocks are held
  std::atomic<uint64_t> recomputed{0};         // consumer: fell back to local prefill
  std::atomic<uint64_t> pulls_refused{0};      // producer: pulls over max_waiting_pulls
  std::atomic<uint64_t> unauthenticated{0};    // either side: messages refused for their tag
  std::atomic<uint64_t> bootstrap_refused{0};  // consumer: bootstrap addresses not allowed
  std::atomic<uint64_t> unwritten_finish{0};   // consumer: FINISH without the KV notification
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> time_buckets{};
  std::atomic<uint64_t> time_count{0};
  std::atomic<uint64_t> time_sum_us{0};

  void ObserveTransferSeconds(double seconds);
  std::string Render() const;
};

}  // namespace ferry::connector
