// Deadlines: every blocking wait in Ferry takes one.
//
// Example:
//   Deadline d = Deadline::In(std::chrono::seconds(5));
//   bool done = false;
//   while (!done) {
//     if (d.Expired()) return DeadlineExceededError("no answer within 5 s");
//     done = true;  // ... wait at most d.Remaining() for the next step ...
//   }
//
// A Deadline is a point on the steady clock; Deadline::Infinite() never expires (use it
// only where another mechanism, such as shutdown, bounds the wait). Value type.
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry {

using SteadyClock = std::chrono::steady_clock;

class Deadline {
 public:
  static Deadline In(std::chrono::nanoseconds d) { return Deadline(SteadyClock::now() + d); }
  static Deadline At(SteadyClock::time_point t) { return Deadline(t); }
  static Deadline Infinite() { return Deadline(SteadyClock::time_point::max()); }

  bool Expired() const { return SteadyClock::now() >= when_; }
  bool IsInfinite() const { return when_ == SteadyClock::time_point::max(); }
  SteadyClock::time_point when() const { return when_; }

  // Time left, clamped at zero.
  std::chrono::nanoseconds Remaining() const {
    if (IsInfinite()) return std::chrono::nanoseconds::max();
    auto left = when_ - SteadyClock::now();
    return left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                            : std::chrono::nanoseconds(0);
  }
  // Remaining time in whole milliseconds for poll(2)-style APIs: -1 if infinite, capped
  // at INT32_MAX, rounded up so that a non-expired deadline never yields 0.
  int RemainingMsForPoll() const;

  // The earlier of two deadlines.
  static Deadline Min(Deadline a, Deadline b) { return a.when_ < b.when_ ? a : b; }

 private:
  explicit Deadline(SteadyClock::time_point t) : when_(t) {}
  SteadyClock::time_point when_;
};

// Nanoseconds on the steady clock, for metrics and timestamps.
inline int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

}  // namespace ferry
