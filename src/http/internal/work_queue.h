// WorkQueue: complete requests waiting for a worker, bounded by max_queued_requests.
// The loop pushes (never blocks: a full queue is answered 503), workers pop.
//
//   Job job{std::move(conn), std::move(request), handler, keep_alive};
//   if (!queue.TryPush(job)) { /* job untouched: answer 503 */ }
//   while (std::optional<Job> j = queue.Pop()) Serve(std::move(*j));   // a worker
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "common/mutex.h"
#include "http/http_request.h"
#include "http/http_response.h"
#include "http/internal/connection.h"

namespace ferry::http::internal {

struct Job {
  std::unique_ptr<Connection> conn;
  Request request;
  const Handler* handler = nullptr;
  bool keep_alive = true;  // the client allows reuse and the per-connection cap is not hit
};

class WorkQueue {
 public:
  explicit WorkQueue(size_t capacity) : capacity_(capacity) {}

  // Queues `job` (moving from it) unless the queue is full or closed; then returns false
  // and leaves `job` as it was.
  bool TryPush(Job& job) {
    {
      MutexLock lock(&mu_);
      if (closed_ || jobs_.size() >= capacity_) return false;
      jobs_.push_back(std::move(job));
    }
    cv_.Signal();
    return true;
  }

  // Blocks until a job is queued; nullopt once the queue is closed and empty.
  std::optional<Job> Pop() {
    MutexLock lock(&mu_);
    cv_.Wait(&mu_, [this]() FERRY_REQUIRES(mu_) { return closed_ || !jobs_.empty(); });
    if (jobs_.empty()) return std::nullopt;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }

  // Refuses further pushes and wakes every waiting Pop(); queued jobs are still popped.
  void Close() {
    {
      MutexLock lock(&mu_);
      closed_ = true;
    }
    cv_.SignalAll();
  }

  size_t size() const {
    MutexLock lock(&mu_);
    return jobs_.size();
  }

 private:
  const size_t capacity_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Job> jobs_ FERRY_GUARDED_BY(mu_);
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::http::internal
