// Mutex, SharedMutex, their scoped locks, and CondVar: std::mutex / std::shared_mutex /
// std::condition_variable with clang thread-safety annotations (thread_annotations.h), so that
// the clang-tsa preset checks every FERRY_GUARDED_BY member is touched only under its lock.
//
// Example (namespace scope):
//   class Flag {
//    public:
//     void Set() FERRY_EXCLUDES(mu_) {
//       MutexLock lock(&mu_);
//       ready_ = true;
//       cv_.SignalAll();
//     }
//     // `deadline`: a steady_clock time point, e.g. Deadline::when() (common/deadline.h).
//     bool WaitReady(std::chrono::steady_clock::time_point deadline) FERRY_EXCLUDES(mu_) {
//       MutexLock lock(&mu_);
//       return cv_.WaitUntil(&mu_, deadline, [&]() FERRY_REQUIRES(mu_) { return ready_; });
//     }
//    private:
//     Mutex mu_;
//     CondVar cv_;
//     bool ready_ FERRY_GUARDED_BY(mu_) = false;
//   };
//
// These few classes live together in this one header, against the one-class-per-file rule,
// because none is usable alone: the locks exist for the mutexes and CondVar waits on a Mutex
// through its internals. Header-only.
//
// Thread safety: every class here is meant to be shared between threads; a MutexLock belongs
// to the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "common/thread_annotations.h"

namespace ferry {

// A non-recursive exclusive lock. Lock()/Unlock() are the names to call; lock()/unlock()/
// try_lock() exist so that standard helpers (std::unique_lock, std::scoped_lock) accept it.
class FERRY_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() FERRY_ACQUIRE() { mu_.lock(); }
  void Unlock() FERRY_RELEASE() { mu_.unlock(); }
  // Takes the lock if it is free; true when taken.
  bool TryLock() FERRY_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the calling thread holds the lock. std::mutex cannot say who holds
  // it, so this checks nothing at run time; call it only where the lock is known held.
  void AssertHeld() const FERRY_ASSERT_CAPABILITY(this) {}

  void lock() FERRY_ACQUIRE() { Lock(); }
  void unlock() FERRY_RELEASE() { Unlock(); }
  bool try_lock() FERRY_TRY_ACQUIRE(true) { return TryLock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// A readers-writer lock: one writer (Lock) or any number of readers (ReaderLock).
class FERRY_CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() FERRY_ACQUIRE() { mu_.lock(); }
  void Unlock() FERRY_RELEASE() { mu_.unlock(); }
  void ReaderLock() FERRY_ACQUIRE_SHARED() { mu_.lock_shared(); }
  void ReaderUnlock() FERRY_RELEASE_SHARED() { mu_.unlock_shared(); }
  // Checks nothing at run time (see Mutex::AssertHeld).
  void AssertHeld() const FERRY_ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() const FERRY_ASSERT_SHARED_CAPABILITY(this) {}

  void lock() FERRY_ACQUIRE() { Lock(); }
  void unlock() FERRY_RELEASE() { Unlock(); }
  void lock_shared() FERRY_ACQUIRE_SHARED() { ReaderLock(); }
  void unlock_shared() FERRY_RELEASE_SHARED() { ReaderUnlock(); }

 private:
  std::shared_mutex mu_;
};

// Holds a Mutex (or a SharedMutex exclusively) from construction to destruction. Unlock()
// and Lock() drop and retake it in between (for work that must run without the lock); the
// destructor releases it only if held.
class FERRY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) FERRY_ACQUIRE(mu) : mu_(mu) { mu->Lock(); }
  explicit MutexLock(SharedMutex* mu) FERRY_ACQUIRE(mu) : shared_(mu) { mu->Lock(); }
  ~MutexLock() FERRY_RELEASE() {
    if (held_) Release();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() FERRY_RELEASE() {
    held_ = false;
    Release();
  }
  void Lock() FERRY_ACQUIRE() {
    if (mu_ != nullptr) {
      mu_->Lock();
    } else {
      shared_->Lock();
    }
    held_ = true;
  }

 private:
  void Release() FERRY_NO_THREAD_SAFETY_ANALYSIS {
    if (mu_ != nullptr) {
      mu_->Unlock();
    } else {
      shared_->Unlock();
    }
  }

  Mutex* const mu_ = nullptr;
  SharedMutex* const shared_ = nullptr;
  bool held_ = true;
};

// Holds a SharedMutex shared from construction to destruction.
class FERRY_SCOPED_CAPABILITY ReaderMutexLock {
 public:
  explicit ReaderMutexLock(SharedMutex* mu) FERRY_ACQUIRE_SHARED(mu) : mu_(mu) { mu->ReaderLock(); }
  ~ReaderMutexLock() FERRY_RELEASE() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// A condition variable tied to a Mutex. Every wait takes the Mutex held by the caller,
// releases it while blocked and holds it again on return; wakeups may be spurious, so the
// forms without a predicate belong in a loop that rechecks the condition. Signal/SignalAll
// may be called with or without the Mutex held.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) FERRY_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Waits until pred() is true (pred runs with `mu` held; annotate a lambda
  // FERRY_REQUIRES(mu_) when it reads guarded members).
  template <typename Pred>
  void Wait(Mutex* mu, Pred pred) FERRY_REQUIRES(mu) {
    while (!CallHeld(pred)) Wait(mu);
  }

  // Waits until signalled or `deadline`; true when the deadline passed first.
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline)
      FERRY_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
    lock.release();
    return timed_out;
  }
  // Waits until pred() or `deadline`; returns pred() as last evaluated (false: timed out).
  template <typename Clock, typename Duration, typename Pred>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline, Pred pred)
      FERRY_REQUIRES(mu) {
    while (!CallHeld(pred)) {
      if (WaitUntil(mu, deadline)) return CallHeld(pred);
    }
    return true;
  }

  // Waits until signalled or `timeout` elapses; true when it elapsed first.
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout) FERRY_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out = cv_.wait_for(lock, timeout) == std::cv_status::timeout;
    lock.release();
    return timed_out;
  }
  // Waits until pred() or `timeout` elapses; returns pred() as last evaluated.
  template <typename Rep, typename Period, typename Pred>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout, Pred pred)
      FERRY_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout, std::move(pred));
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  // The predicate's own annotation names the caller's mutex member, which the analysis
  // cannot match to the `mu` parameter here; the public waits require `mu`, so the call is
  // made with it held.
  template <typename Pred>
  static bool CallHeld(Pred& pred) FERRY_NO_THREAD_SAFETY_ANALYSIS {
    return pred();
  }

  std::condition_variable cv_;
};

}  // namespace ferry
