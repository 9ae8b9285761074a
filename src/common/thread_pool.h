// ThreadPool: a fixed set of worker threads running posted tasks in FIFO order.
//
// Example:
//   ThreadPool pool("kv-sender", 10);
//   bool queued = pool.Post([] { /* runs on a worker */ });
//   // ~ThreadPool runs every task already posted, then joins the workers.
//
// Thread safety: Post may be called from any thread, including from a task.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace ferry {

class ThreadPool {
 public:
  // `threads` >= 1 (smaller values are raised to 1).
  ThreadPool(std::string name, int threads);
  ~ThreadPool();  // drains the queue, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues a task. Returns false (and drops it) once the pool is shutting down.
  bool Post(std::function<void()> task);
  // Tasks queued and not yet started.
  size_t pending() const;

 private:
  void Work();

  const std::string name_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ FERRY_GUARDED_BY(mu_);
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace ferry
