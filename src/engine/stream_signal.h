// StreamSignal: wakes one consumer that waits on several RequestStreams at once (the n
// choices and prompts of one OpenAI request). Every Push into a stream made with the
// signal bumps its count.
//
//   auto signal = std::make_shared<StreamSignal>();
//   request.signal = signal;                      // GenerateRequest, for each stream
//   uint64_t seen = signal->count();
//   ... poll every stream with Next(Deadline::In(0), &out) ...
//   if (nothing) signal->WaitChanged(seen, deadline);
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "common/deadline.h"

namespace ferry::engine {

class StreamSignal {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
    }
    cv_.notify_all();
  }
  uint64_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  // Waits until count() differs from `seen` or `deadline` passes; true if it changed.
  bool WaitChanged(uint64_t seen, Deadline deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline.when(), [&] { return count_ != seen; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace ferry::engine
