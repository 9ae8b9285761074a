#include "common/thread_pool.h"

#include <pthread.h>

#include "common/mutex.h"

namespace ferry {

ThreadPool::ThreadPool(std::string name, int threads) : name_(std::move(name)) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { Work(); });
    // Thread names show up in top/gdb; Linux limits them to 15 characters.
    pthread_setname_np(workers_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

ThreadPool::~ThreadPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::Post(std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
  return true;
}

size_t ThreadPool::pending() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

void ThreadPool::Work() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      cv_.Wait(&mu_, [this]() FERRY_REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace ferry
