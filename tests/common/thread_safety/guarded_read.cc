// Compiled, never linked, by the thread_safety_analysis_* tests (clang-tsa preset only): with
// FERRY_TSA_UNLOCKED_READ defined it reads a FERRY_GUARDED_BY member without the lock, which
// -Werror=thread-safety must reject; without it the same code takes the lock and must compile.
#include "common/mutex.h"

namespace ferry {

class Counter {
 public:
  void Add() FERRY_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    ++n_;
  }
  int Get() FERRY_EXCLUDES(mu_) {
#ifndef FERRY_TSA_UNLOCKED_READ
    MutexLock lock(&mu_);
#endif
    return n_;
  }

 private:
  Mutex mu_;
  int n_ FERRY_GUARDED_BY(mu_) = 0;
};

int Use() {
  Counter c;
  c.Add();
  return c.Get();
}

}  // namespace ferry
