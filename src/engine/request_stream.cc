#include "engine/request_stream.h"

#include "common/mutex.h"

namespace ferry::engine {

void RequestStream::Push(RequestOutput out) {
  {
    MutexLock lock(&mu_);
    if (pushed_final_) return;
    pushed_final_ = out.finished;
    queue_.push_back(std::move(out));
  }
  cv_.Signal();
  if (signal_) signal_->Notify();
}

RequestStream::Poll RequestStream::Next(Deadline deadline, RequestOutput* out) {
  MutexLock lock(&mu_);
  while (queue_.empty() && !taken_final_) {
    if (cv_.WaitUntil(&mu_, deadline.when()) && queue_.empty() && !taken_final_) {
      return Poll::kTimedOut;
    }
  }
  if (queue_.empty()) return Poll::kClosed;
  *out = std::move(queue_.front());
  queue_.pop_front();
  if (out->finished) taken_final_ = true;
  return Poll::kOutput;
}

bool RequestStream::finished() const {
  MutexLock lock(&mu_);
  return pushed_final_;
}

}  // namespace ferry::engine
