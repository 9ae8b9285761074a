#include "engine/request_stream.h"

namespace ferry::engine {

void RequestStream::Push(RequestOutput out) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pushed_final_) return;
    pushed_final_ = out.finished;
    queue_.push_back(std::move(out));
  }
  cv_.notify_one();
  if (signal_) signal_->Notify();
}

RequestStream::Poll RequestStream::Next(Deadline deadline, RequestOutput* out) {
  std::unique_lock<std::mutex> lock(mu_);
  while (queue_.empty() && !taken_final_) {
    if (cv_.wait_until(lock, deadline.when()) == std::cv_status::timeout && queue_.empty() &&
        !taken_final_) {
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
  std::lock_guard<std::mutex> lock(mu_);
  return pushed_final_;
}

}  // namespace ferry::engine
