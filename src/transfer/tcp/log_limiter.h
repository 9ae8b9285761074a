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

#include "common/deadline.h"
#include "common/mutex.h"

namespace ferry::transfer::tcp {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval) : interval_(interval) {}

  // True if a line may be logged now; then *held_back is how many were refused since the
  // last line let through.
  bool Allow(uint64_t* held_back) {
    MutexLock lock(&mu_);
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
  Mutex mu_;
  bool any_ FERRY_GUARDED_BY(mu_) = false;
  SteadyClock::time_point last_ FERRY_GUARDED_BY(mu_);
  uint64_t held_back_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::transfer::tcp
