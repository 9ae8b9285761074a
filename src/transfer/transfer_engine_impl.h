// TransferEngineImpl: the implementation behind ferry::TransferEngine.
//
// Owns the memory registry, the opened segments (descriptor cache), the batches, the
// ControlPlane (the RPC port: handshake, notifications, the target half of tcp), the data
// transports in preference order (from options.transport: e.g. shm, ucx, tcp), an
// optional metadata store, and one worker thread for work that must not run on transport
// threads (notifications after a call's writes, retries on the next transport).
//
// Request flow: Submit validates every request against the cached descriptor (refreshing
// it once if a range is not covered), appends the requests to the batch, cuts each into
// slices of options.slice_size and hands them to the first transport of the peer's route
// (the transports that can reach it, in preference order). Each slice's done() counts down
// its request; the last one settles it (or its notification group). A slice that fails on
// a transport which then no longer reaches the peer (CanReach false: it refused) is
// retried on the next transport of the route, counted in transport_fallbacks and logged
// once per peer and transport.
//
// Thread safety: every public method is thread-safe (see transfer_engine.h).
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "ferry/transfer_engine.h"
#include "metadata/metadata_store.h"
#include "transfer/batch.h"
#include "transfer/control_plane.h"
#include "transfer/memory_registry.h"
#include "transfer/transport.h"

namespace ferry::transfer {

class TransferEngineImpl final : public TransferEngine, public TransportHost {
 public:
  static Result<std::unique_ptr<TransferEngine>> Create(const TransferEngineOptions& options);
  ~TransferEngineImpl() override;

  // TransferEngine
  std::string local_name() const override { return local_name_; }
  uint16_t rpc_port() const override { return rpc_port_; }
  Status RegisterMemory(std::span<const MemoryRegion> regions) override;
  Status UnregisterMemory(std::span<void* const> addrs) override;
  Result<void*> AllocateManagedBuffer(size_t length) override;
  Status FreeManagedBuffer(void* addr) override;
  Result<SegmentId> OpenSegment(const std::string& name) override;
  Result<SegmentDescriptor> GetSegmentDescriptor(SegmentId id, bool refresh) override;
  Result<std::chrono::microseconds> Probe(SegmentId id, std::chrono::milliseconds timeout) override;
  Status CloseSegment(SegmentId id) override;
  SegmentDescriptor LocalDescriptor() const override;
  Result<BatchId> AllocateBatch(size_t capacity) override;
  Status Submit(BatchId batch, std::span<const TransferRequest> requests,
                std::chrono::milliseconds timeout, const std::string* notify) override;
  Result<TransferStatus> GetTransferStatus(BatchId batch, size_t index) override;
  Result<TransferStatus> GetBatchStatus(BatchId batch) override;
  Status WaitBatch(BatchId batch, std::chrono::milliseconds timeout) override;
  Status FreeBatch(BatchId batch) override;
  Status TransferSync(std::span<const TransferRequest> requests, std::chrono::milliseconds timeout,
                      const std::string* notify) override;
  Status SendNotification(SegmentId segment, const std::string& message) override;
  std::vector<Notification> TakeNotifications() override;
  TransferCounters counters() const override;

  // TransportHost
  Status CheckInboundRange(uint64_t addr, uint64_t len) const override;
  void DeliverNotification(Notification n) override;
  void CountInbound(TransferOp op, uint64_t bytes) override;
  void CountRejected() override;

 private:
  struct Segment {
    std::string name;
    std::shared_ptr<const SegmentDescriptor> desc;  // replaced, never mutated
    // The transports that reach this peer, in preference order (recomputed when one
    // refuses it or the descriptor changes). Empty: no transport reaches it.
    std::vector<Transport*> route;
  };
  // Where one request goes; filled by Resolve.
  struct ResolvedTarget {
    std::shared_ptr<const SegmentDescriptor> desc;
    Transport* transport = nullptr;
    bool refreshed = false;  // the descriptor was refetched once already
  };
  // A buffer of AllocateManagedBuffer.
  struct ManagedBuffer {
    size_t length = 0;
    Transport* allocator = nullptr;  // null: anonymous mmap, ours to munmap
  };
  struct NotifyGroup;  // requests of one Submit to one segment that carry a notification
  struct SliceContext;

  explicit TransferEngineImpl(const TransferEngineOptions& options);
  Status Init();

  // Fetches a peer descriptor from the peer (P2P) or the metadata store.
  Result<SegmentDescriptor> FetchDescriptor(const std::string& name, Deadline deadline);
  // Refetches segment `id` and updates the cache. Errors as FetchDescriptor, NotFound.
  Result<SegmentDescriptor> RefreshSegment(SegmentId id);
  // Installs `d` (fresh from the peer or the metadata service) as segment `id`'s
  // descriptor: a new pid drops the old connections; the route is recomputed.
  Result<SegmentDescriptor> InstallDescriptor(SegmentId id, const std::string& name,
                                              int64_t old_pid, SegmentDescriptor d);
  // The transports that can reach `peer` now, in preference order.
  std::vector<Transport*> Route(const SegmentDescriptor& peer) const;
  // Creates the transports options_.transport names, in preference order, from `base`.
  Status CreateTransports(const TransportOptions& base);
  // After `failed` failed a slice to segment `id`: if it no longer reaches the peer, drops
  // it from the route and returns the next transport (nullptr: none, or not a refusal).
  Transport* NextAfterRefusal(SegmentId id, const SegmentDescriptor& peer, Transport* failed,
                              const Status& why);
  // Checks `r` against its segment's cached descriptor, refreshing it once if the range
  // is not covered. Errors: InvalidArgument (unknown segment, range outside buffers).
  Status Resolve(const TransferRequest& r, ResolvedTarget* t);
  void PublishDescriptor();
  std::shared_ptr<TransferBatch> FindBatch(BatchId id) const;

  void StartSlices(Transport* transport, const SegmentDescriptor& peer,
                   std::vector<std::shared_ptr<SliceContext>> slices, Deadline deadline);
  void OnSliceDone(const std::shared_ptr<SliceContext>& ctx, const Status& s);
  // `state` is a request of `batch` whose slices are all done.
  void SettleRequest(const std::shared_ptr<TransferBatch>& batch, RequestState* state,
                     const std::shared_ptr<NotifyGroup>& group);
  void EndRequest(TransferBatch& batch, RequestState* state, const Status& s);

  // Runs job(false) on the worker thread, or job(true) at once after shutdown began.
  void RunOnWorker(std::function<void(bool cancelled)> job);
  void WorkerLoop();

  const TransferEngineOptions options_;
  // Identity, written once in Init (after the server bound its port), then published by
  // identity_ready_ (release); LocalDescriptor reads them only after acquiring it.
  std::atomic<bool> identity_ready_{false};
  std::string local_name_;
  std::string advertised_host_;
  uint16_t rpc_port_ = 0;
  std::string host_id_;
  int64_t pid_ = 0;

  // Serializes (un)registration with publishing, so the store never goes back in time.
  Mutex publish_mu_;
  MemoryRegistry memory_;
  std::atomic<uint64_t> version_{0};
  std::unique_ptr<metadata::MetadataStore> store_;  // null with P2PHANDSHAKE

  // Destroyed explicitly in ~TransferEngineImpl: the data transports first, then the
  // control plane (its server answers peers' tcp frames until then).
  std::unique_ptr<ControlPlane> control_;
  std::vector<std::unique_ptr<Transport>> transports_;  // preference order; set in Init
  // Slices failing while the transports are destroyed must not look at them: the
  // destructor sets stopping_ under an exclusive lock before destroying any, and
  // NextAfterRefusal reads it (and uses the transports) under a shared one.
  mutable SharedMutex stopping_mu_;
  bool stopping_ FERRY_GUARDED_BY(stopping_mu_) = false;

  // Buffers of AllocateManagedBuffer by address; those of a transport die with it, the
  // others are unmapped after the transports and the control plane are gone.
  Mutex managed_mu_;
  std::map<void*, ManagedBuffer> managed_ FERRY_GUARDED_BY(managed_mu_);

  mutable Mutex segments_mu_;
  SegmentId next_segment_ FERRY_GUARDED_BY(segments_mu_) = 1;
  std::map<SegmentId, Segment> segments_ FERRY_GUARDED_BY(segments_mu_);
  std::map<std::string, SegmentId> by_name_ FERRY_GUARDED_BY(segments_mu_);

  mutable Mutex batches_mu_;
  BatchId next_batch_ FERRY_GUARDED_BY(batches_mu_) = 1;
  std::map<BatchId, std::shared_ptr<TransferBatch>> batches_ FERRY_GUARDED_BY(batches_mu_);

  // Untaken notifications, oldest first, bounded by options_.max_pending_notifications
  // and options_.max_pending_notification_bytes (the oldest are dropped).
  Mutex notes_mu_;
  std::deque<Notification> notes_ FERRY_GUARDED_BY(notes_mu_);
  size_t notes_bytes_ FERRY_GUARDED_BY(notes_mu_) = 0;         // from + message of notes_
  bool notes_overflowed_ FERRY_GUARDED_BY(notes_mu_) = false;  // dropped since the last take

  struct Counters {
    std::atomic<uint64_t> bytes_written{0}, bytes_read{0}, bytes_received{0}, bytes_served{0},
        requests_done{0}, requests_failed{0}, inbound_rejected{0}, notifications_dropped{0},
        transport_fallbacks{0};
  } counters_;

  Mutex worker_mu_;
  CondVar worker_cv_;
  std::deque<std::function<void(bool)>> jobs_ FERRY_GUARDED_BY(worker_mu_);
  bool worker_stop_ FERRY_GUARDED_BY(worker_mu_) = false;
  std::thread worker_;
};

}  // namespace ferry::transfer
