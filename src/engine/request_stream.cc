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

Result<RequestOutput> RequestStream::Next(Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline.when(), [&] { return !queue_.empty() || taken_final_; })) {
    return DeadlineExceededError("no output from the engine yet");
  }
  if (queue_.empty()) return FailedPreconditionError("the request already finished");
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finished) taken_final_ = true;
  return out;
}

bool RequestStream::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pushed_final_;
}

}  // namespace ferry::engine
