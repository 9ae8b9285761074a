// LogLimiter: lets at most one log line through per interval, and counts the ones it held
// back, so that a flood of bad connections cannot flood the log.
//
//   LogLimiter limiter(std::chrono::seconds(1));
//   uint64_t held_back = 0;
//   if (limiter.Allow(&held_back)) FERRY_LOG_WARN("refused ... ({} more not logged)", held_back);
//
// Thread safety: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "common/deadline.h"

namespace ferry::transfer::tcp {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval) : interval_(interval) {}

  // True if a line may be logged now; then *held_back is how many were refused since the
  // last line let through.
  bool Allow(uint64_t* held_back) {
    std::lock_guard<std::mutex> lock(mu_);
    SteadyClock::time_point now = SteadyClock::now();
    if (any_ && now - last_ < interval_) {
      ++held_back_;
      return false;
    }
    any_ = true;
    last_ = now;
    *held_back = held_back_;
    held_back_ = 0;
    return true;
  }

 private:
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  bool any_ = false;              // GUARDED_BY(mu_)
  SteadyClock::time_point last_;  // GUARDED_BY(mu_)
  uint64_t held_back_ = 0;        // GUARDED_BY(mu_)
};

}  // namespace ferry::transfer::tcp
