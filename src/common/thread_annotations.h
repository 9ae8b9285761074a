// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
//   class Counter {
//    public:
//     void Add() FERRY_EXCLUDES(mu_) { MutexLock lock(&mu_); ++n_; }
//    private:
//     void AddLocked() FERRY_REQUIRES(mu_) { ++n_; }
//     Mutex mu_;
//     int n_ FERRY_GUARDED_BY(mu_) = 0;
//   };
//
// Under clang with -Wthread-safety (the clang-tsa preset) the compiler checks that every
// access to a FERRY_GUARDED_BY member happens with the named mutex held. On compilers without
// the attributes (g++) every macro expands to nothing, so the annotations cost nothing there.
#pragma once

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(guarded_by)
#define FERRY_THREAD_ANNOTATION_(x) __attribute__((x))
#endif
#endif
#ifndef FERRY_THREAD_ANNOTATION_
#define FERRY_THREAD_ANNOTATION_(x)
#endif

// A class whose objects are locks (Mutex, SharedMutex).
#define FERRY_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(capability(x))
// An RAII class that holds a lock for its lifetime (MutexLock, ReaderMutexLock).
#define FERRY_SCOPED_CAPABILITY FERRY_THREAD_ANNOTATION_(scoped_lockable)

// The member may be read or written only with `x` held (reads need at least a shared hold).
#define FERRY_GUARDED_BY(x) FERRY_THREAD_ANNOTATION_(guarded_by(x))
// The data the pointer member points to is guarded by `x` (the pointer itself is not).
#define FERRY_PT_GUARDED_BY(x) FERRY_THREAD_ANNOTATION_(pt_guarded_by(x))

// Lock ordering: this lock is taken before / after the named ones.
#define FERRY_ACQUIRED_BEFORE(...) FERRY_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#define FERRY_ACQUIRED_AFTER(...) FERRY_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))

// The caller must hold the locks exclusively / at least shared.
#define FERRY_REQUIRES(...) FERRY_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define FERRY_REQUIRES_SHARED(...) FERRY_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))

// The function takes / drops the locks (no argument: the object itself).
#define FERRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define FERRY_ACQUIRE_SHARED(...) FERRY_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define FERRY_RELEASE(...) FERRY_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define FERRY_RELEASE_SHARED(...) FERRY_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define FERRY_RELEASE_GENERIC(...) FERRY_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))

// The function takes the lock when it returns the first argument (true / false).
#define FERRY_TRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define FERRY_TRY_ACQUIRE_SHARED(...) \
  FERRY_THREAD_ANNOTATION_(try_acquire_shared_capability(__VA_ARGS__))

// The caller must not hold the locks (the function takes them itself).
#define FERRY_EXCLUDES(...) FERRY_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))

// The function checks at run time that the lock is held; after it the analysis assumes so.
#define FERRY_ASSERT_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(assert_capability(x))
#define FERRY_ASSERT_SHARED_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(assert_shared_capability(x))

// The function returns a reference to the named lock.
#define FERRY_RETURN_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(lock_returned(x))

// Turns the analysis off for one function. Use only where the locking cannot be expressed
// (a lock handed between functions, two locks taken together), with a comment saying why.
#define FERRY_NO_THREAD_SAFETY_ANALYSIS FERRY_THREAD_ANNOTATION_(no_thread_safety_analysis)
