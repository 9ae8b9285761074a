// TransferBatch: the requests of one BatchId, their states, and waiting for them.
//
// A request is cut into slices; each slice's completion calls OnSliceDone(); when the last
// slice has ended the request is "settled" (its outcome known). The engine then ends it
// with End() (possibly later, e.g. after the batch's notification was acknowledged).
// Waiters spin briefly on an atomic counter and then sleep on a condition variable.
//
//   auto batch = std::make_shared<TransferBatch>(16);
//   FERRY_ASSIGN_OR_RETURN(size_t first, batch->Append(reqs.size()));
//   ... slices call batch->request(first + i)->OnSliceDone(status, bytes) ...
//   FERRY_RETURN_IF_ERROR(batch->Wait(Deadline::In(1s)));
//
// Thread safety: thread-safe. Request objects live as long as the batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include "common/deadline.h"
#include "common/mutex.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"

namespace ferry::transfer {

class RequestState {
 public:
  TransferOp op = TransferOp::kWrite;
  uint64_t length = 0;

  // Arms the request with `slices` slices (0: settles at once on the first End()).
  void Arm(uint32_t slices) { slices_left_.store(slices, std::memory_order_relaxed); }
  // Records one slice's end. Returns true when it was the last slice; the caller then
  // ends the request (Outcome() tells how).
  bool OnSliceDone(const Status& s, uint64_t bytes);
  // The settled outcome: OK or the first slice error.
  Status Outcome() const;
  // Publishes the final state. Called exactly once per request.
  void End(const Status& s);
  TransferStatus Snapshot() const;
  bool pending() const { return state_.load(std::memory_order_acquire) == TransferState::kPending; }

 private:
  std::atomic<uint32_t> slices_left_{0};
  std::atomic<uint64_t> bytes_done_{0};
  std::atomic<TransferState> state_{TransferState::kPending};
  mutable Mutex mu_;
  Status first_error_ FERRY_GUARDED_BY(mu_);
  Status final_ FERRY_GUARDED_BY(mu_);  // set once by End()
};

class TransferBatch {
 public:
  explicit TransferBatch(size_t capacity) : capacity_(capacity) {}

  size_t capacity() const { return capacity_; }
  // Adds n pending requests; returns the index of the first.
  // Errors: InvalidArgument if fewer than n slots are left.
  Result<size_t> Append(size_t n);
  // Undoes the last Append(n) when nothing was started for it.
  void Rollback(size_t first);
  // Precondition: index < size(). The pointer stays valid while the batch lives (started
  // requests are never removed), so slices keep it instead of asking again.
  RequestState* request(size_t index);
  size_t size() const;

  // Ends `request` (one of this batch's) with `s` and wakes waiters when the batch drains.
  void EndRequest(RequestState* request, const Status& s);

  Result<TransferStatus> Status(size_t index) const;
  TransferStatus Aggregate() const;
  bool Pending() const { return pending_.load(std::memory_order_acquire) != 0; }
  // Waits until no request is pending; returns the aggregate error, OK, or
  // DeadlineExceeded if some are still pending at the deadline.
  ferry::Status Wait(Deadline deadline);

 private:
  const size_t capacity_;
  std::atomic<size_t> pending_{0};
  mutable Mutex mu_;
  CondVar cv_;                                                                // pending_ reached 0
  std::deque<std::unique_ptr<RequestState>> requests_ FERRY_GUARDED_BY(mu_);  // (growth only)
};

}  // namespace ferry::transfer
