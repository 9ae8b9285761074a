#include "transfer/batch.h"

#include <thread>

#include "common/mutex.h"

namespace ferry::transfer {
namespace {

// How long a waiter polls before sleeping: a reply usually arrives within this on
// loopback, and sleeping costs a ~35 us wake-up on this machine class.
constexpr auto kSpinFor = std::chrono::microseconds(50);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

bool RequestState::OnSliceDone(const ferry::Status& s, uint64_t bytes) {
  if (s.ok()) {
    bytes_done_.fetch_add(bytes, std::memory_order_relaxed);
  } else {
    MutexLock lock(&mu_);
    if (first_error_.ok()) first_error_ = s;
  }
  return slices_left_.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

ferry::Status RequestState::Outcome() const {
  MutexLock lock(&mu_);
  return first_error_;
}

void RequestState::End(const ferry::Status& s) {
  {
    MutexLock lock(&mu_);
    final_ = s;
  }
  state_.store(s.ok() ? TransferState::kDone : TransferState::kFailed, std::memory_order_release);
}

TransferStatus RequestState::Snapshot() const {
  TransferStatus t;
  t.state = state_.load(std::memory_order_acquire);
  t.bytes_done = bytes_done_.load(std::memory_order_relaxed);
  if (t.state == TransferState::kFailed) {
    MutexLock lock(&mu_);
    t.error = final_;
  }
  return t;
}

Result<size_t> TransferBatch::Append(size_t n) {
  MutexLock lock(&mu_);
  if (requests_.size() + n > capacity_) {
    return InvalidArgumentError("batch is full: capacity " + std::to_string(capacity_) + ", " +
                                std::to_string(requests_.size()) + " used, " + std::to_string(n) +
                                " more asked");
  }
  size_t first = requests_.size();
  for (size_t i = 0; i < n; ++i) requests_.push_back(std::make_unique<RequestState>());
  pending_.fetch_add(n, std::memory_order_acq_rel);
  return first;
}

void TransferBatch::Rollback(size_t first) {
  MutexLock lock(&mu_);
  size_t n = requests_.size() - first;
  requests_.resize(first);
  pending_.fetch_sub(n, std::memory_order_acq_rel);
}

RequestState* TransferBatch::request(size_t index) {
  MutexLock lock(&mu_);
  return requests_[index].get();
}

size_t TransferBatch::size() const {
  MutexLock lock(&mu_);
  return requests_.size();
}

void TransferBatch::EndRequest(RequestState* r, const ferry::Status& s) {
  r->End(s);
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    MutexLock lock(&mu_);  // pairs with the waiter's predicate check
    cv_.SignalAll();
  }
}

Result<TransferStatus> TransferBatch::Status(size_t index) const {
  MutexLock lock(&mu_);
  if (index >= requests_.size()) {
    return InvalidArgumentError("request index " + std::to_string(index) + " out of range (" +
                                std::to_string(requests_.size()) + " submitted)");
  }
  return requests_[index]->Snapshot();
}

TransferStatus TransferBatch::Aggregate() const {
  MutexLock lock(&mu_);
  TransferStatus agg;
  agg.state = TransferState::kDone;
  bool failed = false;
  for (const auto& r : requests_) {
    TransferStatus t = r->Snapshot();
    agg.bytes_done += t.bytes_done;
    if (t.state == TransferState::kFailed && !failed) {
      failed = true;
      agg.error = t.error;
    } else if (t.state == TransferState::kPending && !failed) {
      agg.state = TransferState::kPending;
    }
  }
  if (failed) agg.state = TransferState::kFailed;
  return agg;
}

ferry::Status TransferBatch::Wait(Deadline deadline) {
  auto spin_until = SteadyClock::now() + kSpinFor;
  while (Pending() && SteadyClock::now() < spin_until) CpuRelax();
  if (Pending()) {
    MutexLock lock(&mu_);
    if (deadline.IsInfinite()) {
      cv_.Wait(&mu_, [&]() FERRY_REQUIRES(mu_) { return !Pending(); });
    } else if (!cv_.WaitUntil(&mu_, deadline.when(),
                              [&]() FERRY_REQUIRES(mu_) { return !Pending(); })) {
      return DeadlineExceededError("batch still has pending requests at the wait's deadline");
    }
  }
  TransferStatus agg = Aggregate();
  if (agg.state == TransferState::kFailed) return agg.error;
  return OkStatus();
}

}  // namespace ferry::transfer
