// Counters: the event counts behind HttpServer::stats(), bumped by the loop and the
// workers. Thread safety: atomics, relaxed (they are statistics, not synchronisation).
#pragma once

#include <atomic>
#include <cstdint>

namespace ferry::http::internal {

struct Counters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused_over_limit{0};
  std::atomic<uint64_t> accept_fd_exhausted{0};
  std::atomic<uint64_t> header_timeouts{0};
  std::atomic<uint64_t> body_timeouts{0};
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> too_large{0};
  std::atomic<uint64_t> overloaded_503{0};
  std::atomic<uint64_t> handler_exceptions{0};
  std::atomic<uint64_t> requests{0};
};

}  // namespace ferry::http::internal
