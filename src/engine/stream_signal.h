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

#include <cstdint>

#include "common/deadline.h"
#include "common/mutex.h"

namespace ferry::engine {

class StreamSignal {
 public:
  void Notify() {
    {
      MutexLock lock(&mu_);
      ++count_;
    }
    cv_.SignalAll();
  }
  uint64_t count() const {
    MutexLock lock(&mu_);
    return count_;
  }
  // Waits until count() differs from `seen` or `deadline` passes; true if it changed.
  bool WaitChanged(uint64_t seen, Deadline deadline) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, deadline.when(),
                         [&]() FERRY_REQUIRES(mu_) { return count_ != seen; });
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  uint64_t count_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::engine
