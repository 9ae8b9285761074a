// TransferEngineImpl: batches, slicing, completion and notifications.
#include <fmt/format.h>

#include <map>

#include "common/log.h"
#include "common/mutex.h"
#include "transfer/transfer_engine_impl.h"

namespace ferry::transfer {
namespace {

// Bound on the slices of one request (keeps per-request counters in 32 bits).
constexpr size_t kMaxSlicesPerRequest = 1u << 24;

}  // namespace

struct TransferEngineImpl::NotifyGroup {
  std::string message;
  std::shared_ptr<const SegmentDescriptor> peer;
  std::shared_ptr<TransferBatch> batch;
  Deadline deadline = Deadline::Infinite();
  std::vector<size_t> indices;
  std::atomic<size_t> left{0};
};

struct TransferEngineImpl::SliceContext {
  std::shared_ptr<TransferBatch> batch;
  RequestState* state = nullptr;  // its request, in `batch`
  std::shared_ptr<NotifyGroup> group;
  SegmentId segment = 0;
  std::shared_ptr<const SegmentDescriptor> peer;
  TransferOp op = TransferOp::kWrite;
  char* local = nullptr;
  uint64_t remote = 0;
  size_t length = 0;
  Deadline deadline = Deadline::Infinite();
  Transport* transport = nullptr;  // the one it was handed to last
};

std::shared_ptr<TransferBatch> TransferEngineImpl::FindBatch(BatchId id) const {
  MutexLock lock(&batches_mu_);
  auto it = batches_.find(id);
  return it == batches_.end() ? nullptr : it->second;
}

Result<BatchId> TransferEngineImpl::AllocateBatch(size_t capacity) {
  if (capacity == 0) return InvalidArgumentError("batch capacity must be at least 1");
  MutexLock lock(&batches_mu_);
  BatchId id = next_batch_++;
  batches_[id] = std::make_shared<TransferBatch>(capacity);
  return id;
}

Status TransferEngineImpl::FreeBatch(BatchId id) {
  MutexLock lock(&batches_mu_);
  auto it = batches_.find(id);
  if (it == batches_.end()) return InvalidArgumentError("unknown batch " + std::to_string(id));
  if (it->second->Pending()) {
    return FailedPreconditionError("batch " + std::to_string(id) +
                                   " has pending requests; WaitBatch before FreeBatch");
  }
  batches_.erase(it);
  return OkStatus();
}

Result<TransferStatus> TransferEngineImpl::GetTransferStatus(BatchId id, size_t index) {
  auto batch = FindBatch(id);
  if (!batch) return InvalidArgumentError("unknown batch " + std::to_string(id));
  return batch->Status(index);
}

Result<TransferStatus> TransferEngineImpl::GetBatchStatus(BatchId id) {
  auto batch = FindBatch(id);
  if (!batch) return InvalidArgumentError("unknown batch " + std::to_string(id));
  return batch->Aggregate();
}

Status TransferEngineImpl::WaitBatch(BatchId id, std::chrono::milliseconds timeout) {
  auto batch = FindBatch(id);
  if (!batch) return InvalidArgumentError("unknown batch " + std::to_string(id));
  return batch->Wait(Deadline::In(timeout));
}

Status TransferEngineImpl::Resolve(const TransferRequest& r, ResolvedTarget* t) {
  if (!t->desc) {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(r.segment);
    if (it == segments_.end()) {
      return InvalidArgumentError("unknown segment id " + std::to_string(r.segment) +
                                  "; OpenSegment first");
    }
    t->desc = it->second.desc;
    t->transport = it->second.route.empty() ? nullptr : it->second.route.front();
  }
  if (t->transport == nullptr && r.length > 0) {
    return UnavailableError("no transport of this engine reaches segment " + t->desc->name);
  }
  if (r.length == 0 || t->desc->FindBuffer(r.remote, r.length)) return OkStatus();
  if (!t->refreshed) {
    t->refreshed = true;
    auto fresh = RefreshSegment(r.segment);
    if (!fresh.ok()) {
      return InvalidArgumentError("range not in the cached descriptor of segment " + t->desc->name +
                                  " and refreshing it failed: " + fresh.status().ToString());
    }
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(r.segment);
    if (it == segments_.end()) return InvalidArgumentError("segment closed meanwhile");
    t->desc = it->second.desc;
    t->transport = it->second.route.empty() ? nullptr : it->second.route.front();
  }
  if (t->transport == nullptr) {
    return UnavailableError("no transport of this engine reaches segment " + t->desc->name);
  }
  if (!t->desc->FindBuffer(r.remote, r.length)) {
    return InvalidArgumentError(
        fmt::format("remote range {:#x}+{} is outside the registered, remote-accessible buffers of "
                    "segment {}",
                    r.remote, r.length, t->desc->name));
  }
  return OkStatus();
}

Status TransferEngineImpl::Submit(BatchId id, std::span<const TransferRequest> requests,
                                  std::chrono::milliseconds timeout, const std::string* notify) {
  auto batch = FindBatch(id);
  if (!batch) return InvalidArgumentError("unknown batch " + std::to_string(id));
  Deadline deadline = Deadline::In(timeout.count() > 0 ? timeout : options_.default_timeout);

  // 1. Validate everything before starting anything.
  struct Target : ResolvedTarget {
    std::shared_ptr<NotifyGroup> group;
    std::vector<std::shared_ptr<SliceContext>> slices;
  };
  std::map<SegmentId, Target> targets;
  for (const TransferRequest& r : requests) {
    if (r.length > 0 && r.local == nullptr) {
      return InvalidArgumentError("request has a null local address");
    }
    if (r.length / options_.slice_size >= kMaxSlicesPerRequest) {
      return InvalidArgumentError("request of " + std::to_string(r.length) +
                                  " bytes needs too many slices; raise slice_size");
    }
    FERRY_RETURN_IF_ERROR(Resolve(r, &targets[r.segment]));
  }
  if (requests.empty()) return OkStatus();

  // 2. Reserve the requests in the batch.
  FERRY_ASSIGN_OR_RETURN(size_t first, batch->Append(requests.size()));
  if (notify != nullptr) {
    for (auto& [seg, t] : targets) {
      t.group = std::make_shared<NotifyGroup>();
      t.group->message = *notify;
      t.group->peer = t.desc;
      t.group->batch = batch;
      t.group->deadline = deadline;
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      Target& t = targets[requests[i].segment];
      t.group->indices.push_back(first + i);
      t.group->left.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // 3. Cut into slices.
  const size_t slice = options_.slice_size;
  std::vector<size_t> empty;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TransferRequest& r = requests[i];
    Target& t = targets[r.segment];
    RequestState* state = batch->request(first + i);
    state->op = r.op;
    state->length = r.length;
    size_t n = (r.length + slice - 1) / slice;
    state->Arm(static_cast<uint32_t>(n));
    if (n == 0) {
      empty.push_back(first + i);
      continue;
    }
    for (size_t k = 0; k < n; ++k) {
      auto ctx = std::make_shared<SliceContext>();
      ctx->batch = batch;
      ctx->state = state;
      ctx->group = t.group;
      ctx->segment = r.segment;
      ctx->peer = t.desc;
      ctx->op = r.op;
      ctx->local = static_cast<char*>(r.local) + k * slice;
      ctx->remote = r.remote + k * slice;
      ctx->length = std::min(slice, r.length - k * slice);
      ctx->deadline = deadline;
      ctx->transport = t.transport;
      t.slices.push_back(std::move(ctx));
    }
  }

  // 4. Start. From here on every request ends through its slices' callbacks.
  for (size_t index : empty) {
    std::shared_ptr<NotifyGroup> group;
    if (notify != nullptr) group = targets[requests[index - first].segment].group;
    SettleRequest(batch, batch->request(index), group);
  }
  for (auto& [seg, t] : targets) {
    if (!t.slices.empty()) StartSlices(t.transport, *t.desc, std::move(t.slices), deadline);
  }
  return OkStatus();
}

void TransferEngineImpl::StartSlices(Transport* transport, const SegmentDescriptor& peer,
                                     std::vector<std::shared_ptr<SliceContext>> ctxs,
                                     Deadline deadline) {
  std::vector<Slice> slices(ctxs.size());
  for (size_t i = 0; i < ctxs.size(); ++i) {
    const auto& c = ctxs[i];
    slices[i].op = c->op;
    slices[i].local = c->local;
    slices[i].remote = c->remote;
    slices[i].length = c->length;
    slices[i].done = [this, c](const Status& s) { OnSliceDone(c, s); };
  }
  transport->Submit(peer, slices, deadline);
}

void TransferEngineImpl::OnSliceDone(const std::shared_ptr<SliceContext>& ctx, const Status& s) {
  if (!s.ok()) {
    if (Transport* next = NextAfterRefusal(ctx->segment, *ctx->peer, ctx->transport, s)) {
      // The transport refused this peer: retry on the next one (off the transport thread).
      ctx->transport = next;
      RunOnWorker([this, ctx](bool cancelled) {
        if (cancelled) {
          OnSliceDone(ctx, AbortedError("transfer engine shut down"));
        } else {
          StartSlices(ctx->transport, *ctx->peer, {ctx}, ctx->deadline);
        }
      });
      return;
    }
  }
  if (ctx->state->OnSliceDone(s, s.ok() ? ctx->length : 0)) {
    SettleRequest(ctx->batch, ctx->state, ctx->group);
  }
}

void TransferEngineImpl::SettleRequest(const std::shared_ptr<TransferBatch>& batch,
                                       RequestState* state,
                                       const std::shared_ptr<NotifyGroup>& group) {
  if (!group) {
    EndRequest(*batch, state, state->Outcome());
    return;
  }
  if (group->left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  bool all_ok = true;
  for (size_t i : group->indices) all_ok &= batch->request(i)->Outcome().ok();
  if (!all_ok) {
    for (size_t i : group->indices) {
      RequestState* r = batch->request(i);
      EndRequest(*batch, r, r->Outcome());
    }
    return;
  }
  // Everything is in the target's memory: now tell it (off the transport thread).
  RunOnWorker([this, group](bool cancelled) {
    Status s = cancelled ? AbortedError("transfer engine shut down before the notification")
                         : control_->SendNotification(*group->peer, local_name_, group->message,
                                                      group->deadline);
    if (!s.ok()) s = s.WithContext("data written but the notification failed");
    for (size_t i : group->indices) EndRequest(*group->batch, group->batch->request(i), s);
  });
}

void TransferEngineImpl::EndRequest(TransferBatch& batch, RequestState* r, const Status& s) {
  if (s.ok()) {
    counters_.requests_done.fetch_add(1, std::memory_order_relaxed);
    (r->op == TransferOp::kWrite ? counters_.bytes_written : counters_.bytes_read)
        .fetch_add(r->length, std::memory_order_relaxed);
  } else {
    counters_.requests_failed.fetch_add(1, std::memory_order_relaxed);
  }
  batch.EndRequest(r, s);
}

Status TransferEngineImpl::TransferSync(std::span<const TransferRequest> requests,
                                        std::chrono::milliseconds timeout,
                                        const std::string* notify) {
  if (requests.empty()) return OkStatus();
  std::chrono::milliseconds t = timeout.count() > 0 ? timeout : options_.default_timeout;
  // A single request whose transport can move it on this thread (no thread hops).
  if (requests.size() == 1 && notify == nullptr && requests[0].length > 0 &&
      requests[0].length <= options_.slice_size && requests[0].local != nullptr) {
    const TransferRequest& r = requests[0];
    ResolvedTarget target;
    FERRY_RETURN_IF_ERROR(Resolve(r, &target));
    Status s;
    Slice slice{r.op, static_cast<char*>(r.local), r.remote, r.length,
                [&s](const Status& done) { s = done; }};
    if (target.transport->TransferNow(*target.desc, slice, Deadline::In(t))) {
      if (s.ok()) {
        counters_.requests_done.fetch_add(1, std::memory_order_relaxed);
        (r.op == TransferOp::kWrite ? counters_.bytes_written : counters_.bytes_read)
            .fetch_add(r.length, std::memory_order_relaxed);
        return s;
      }
      if (NextAfterRefusal(r.segment, *target.desc, target.transport, s) == nullptr) {
        counters_.requests_failed.fetch_add(1, std::memory_order_relaxed);
        return s;
      }
      // It refused the peer: the batch path below goes to the next transport of the route.
    }
  }
  FERRY_ASSIGN_OR_RETURN(BatchId id, AllocateBatch(requests.size()));
  Status s = Submit(id, requests, t, notify);
  if (s.ok()) {
    // Requests end by their deadline; the grace covers the notification's round trip.
    s = WaitBatch(id, t + std::chrono::seconds(2));
  }
  Status freed = FreeBatch(id);
  if (!freed.ok()) {
    FERRY_LOG_ERROR("TransferSync: batch {} still pending after its deadline", id);
  }
  return s;
}

}  // namespace ferry::transfer
