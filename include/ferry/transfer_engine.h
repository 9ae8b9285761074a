// Ferry transfer engine: moves bytes between registered memory of processes.
//
// Each engine is a *segment* named "host:port" (the port is its RPC port). A process
// registers buffers; peers open the segment by name and READ from or WRITE into those
// buffers with batches of requests. Transports are picked per peer: "shm" (one copy by
// cross-memory attach) for a peer on the same host, "tcp" otherwise.
//
// Example:
//   ferry::TransferEngineOptions opts;
//   opts.local_name = "127.0.0.1:0";  // port 0: pick a free port
//   FERRY_ASSIGN_OR_RETURN(auto engine, ferry::TransferEngine::Create(opts));
//   std::vector<char> buf(1 << 20);
//   FERRY_RETURN_IF_ERROR(engine->RegisterMemory({buf.data(), buf.size()}));
//   FERRY_ASSIGN_OR_RETURN(ferry::SegmentId peer, engine->OpenSegment("10.0.0.2:17000"));
//   FERRY_ASSIGN_OR_RETURN(ferry::SegmentDescriptor desc, engine->GetSegmentDescriptor(peer));
//   uint64_t remote_addr = desc.buffers.at(0).addr;  // a buffer the peer registered
//   ferry::TransferRequest req{ferry::TransferOp::kWrite, buf.data(), peer, remote_addr, 4096};
//   FERRY_RETURN_IF_ERROR(engine->TransferSync({&req, 1}));
//
// Thread safety: every method of TransferEngine is thread-safe.
// Errors: every method reports failures as a non-OK Status; "in flight" is a
// TransferState, never an error.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/segment.h"
#include "ferry/status.h"

namespace ferry {

// Handle to an opened remote segment; valid until CloseSegment or engine destruction.
using SegmentId = uint64_t;
// Handle to a batch of transfer requests; valid until FreeBatch.
using BatchId = uint64_t;

enum class TransferOp : uint8_t {
  kRead = 0,   // remote -> local
  kWrite = 1,  // local -> remote
};

// One contiguous transfer. The engine may cut it into slices and spread them over
// connections; it completes when every slice has completed.
struct TransferRequest {
  TransferOp op = TransferOp::kWrite;
  void* local = nullptr;  // Source (write) or destination (read) in this process.
  SegmentId segment = 0;  // From OpenSegment.
  uint64_t remote = 0;    // Address in the target process, inside a registered buffer.
  size_t length = 0;      // Bytes; 0 completes at once.
};

enum class TransferState : uint8_t {
  kPending = 0,  // Submitted, not finished.
  kDone = 1,     // All bytes are in the destination's memory.
  kFailed = 2,   // See TransferStatus::error.
};

struct TransferStatus {
  TransferState state = TransferState::kPending;
  size_t bytes_done = 0;  // Bytes of completed slices.
  Status error;           // Non-OK exactly when state == kFailed.
};

// A buffer to register with the engine.
struct MemoryRegion {
  void* addr = nullptr;
  size_t length = 0;
  // Where the memory lives ("cpu", "cpu:0", "cuda:0", ...): informational, published in the
  // segment descriptor. Default: "cpu".
  std::string location = "cpu";
  // Whether peers may read or write it. Default: true.
  bool remote_accessible = true;
};

// A message delivered to the target after a batch's writes are all in its memory.
struct Notification {
  std::string from;     // Segment name of the sender.
  std::string message;  // Opaque bytes.
};

// Counters since the engine started. Monotonic.
struct TransferCounters {
  uint64_t bytes_written = 0;   // Initiator side: WRITE bytes completed.
  uint64_t bytes_read = 0;      // Initiator side: READ bytes completed.
  uint64_t bytes_received = 0;  // Target side: bytes written into our memory by peers.
  uint64_t bytes_served = 0;    // Target side: bytes read from our memory by peers.
  uint64_t requests_done = 0;
  uint64_t requests_failed = 0;
  // Target side: frames and connections refused (bad range, bad frame, failed HELLO,
  // missed deadline, over a connection cap).
  uint64_t inbound_rejected = 0;
  // Target side: notifications dropped, oldest first, because more than
  // max_pending_notifications (or max_pending_notification_bytes) waited untaken.
  uint64_t notifications_dropped = 0;
  // Slices moved to the next transport of a peer's list because the one they went to
  // refused that peer (e.g. the kernel refused shm's cross-memory attach).
  uint64_t transport_fallbacks = 0;
};

struct TransferEngineOptions {
  // "host:port" to listen on for RPC (handshake, notifications, tcp data). Port 0 picks a
  // free port. Binds only to this host's address. Default: "127.0.0.1:0".
  std::string local_name = "127.0.0.1:0";
  // Name advertised to peers when it differs from the bound address (NAT, 0.0.0.0).
  // Default: "" (the bound host and the actual port).
  std::string advertised_name;
  // Where segment descriptors are found: "P2PHANDSHAKE" (ask the peer directly),
  // "http://host:port/path" (key-value server), "etcd://host:port[,host:port]" (etcd v3).
  // Default: "P2PHANDSHAKE".
  std::string metadata = "P2PHANDSHAKE";
  // Data transport, which decides each peer's ordered transport list (the engine moves a
  // request to the next one in the list when a transport refuses that peer):
  //   "auto"  shm, tcp   (shm to same-host peers where the kernel allows, tcp otherwise)
  //   "rdma"  shm, ucx, tcp   (Mooncake's protocol name; ucx picks the host's RDMA NICs;
  //           without a ucx build: shm, tcp with a warning)
  //   "tcp"   tcp only
  //   other   that registered transport, then tcp ("shm", "ucx", "fault:<inner>")
  // Default: "auto".
  std::string transport = "auto";
  // NICs a transport may use, comma separated (Mooncake's device_name; ucx: the devices of
  // UCX_NET_DEVICES, e.g. "mlx5_0:1,mlx5_1:1", striped across when several). Default: ""
  // (all).
  std::string device_name;
  // Transport settings as "key=value,key=value" (e.g. the fault transport's
  // "drop=0.01,delay_ms=5,corrupt=0.001,seed=7"). Default: "".
  std::string transport_params;
  // Shared secret; both sides must set the same one or connections are refused.
  // Default: "" (no secret).
  std::string secret;
  // TCP connections per peer; large requests are sliced across them. Default: 2.
  int connections_per_peer = 2;
  // Largest slice a request is cut into. Default: 4 MiB.
  size_t slice_size = 4 << 20;
  // Deadline of a request when Submit is given none. Default: 30 s.
  std::chrono::milliseconds default_timeout{30000};
  // Deadline for establishing a connection or handshake. Default: 5 s.
  std::chrono::milliseconds connect_timeout{5000};
  // Received notifications kept until TakeNotifications; beyond this many the oldest are
  // dropped (counted in TransferCounters::notifications_dropped). Default: 4096.
  size_t max_pending_notifications = 4096;
  // The same bound on their bytes (sender names + messages); a single notification larger
  // than this is dropped on arrival. Default: 64 MiB.
  size_t max_pending_notification_bytes = 64 << 20;
};

class TransferEngine {
 public:
  // Starts listening on options.local_name and publishes the (empty) local segment.
  // Errors: InvalidArgument for bad options; AlreadyExists if the port is taken;
  // Unavailable if the metadata service cannot be reached.
  static Result<std::unique_ptr<TransferEngine>> Create(const TransferEngineOptions& options);

  // Stops serving, fails pending requests with Aborted, joins every thread, removes the
  // segment from the metadata service (best effort).
  virtual ~TransferEngine();

  // "host:port" under which peers reach this engine.
  virtual std::string local_name() const = 0;
  // The RPC port actually bound.
  virtual uint16_t rpc_port() const = 0;

  // Registers buffers so peers can reach them (if remote_accessible) and so local addresses
  // are known. All-or-nothing. Errors: InvalidArgument (null, zero length, overlaps an
  // already registered buffer or another one in the same call).
  virtual Status RegisterMemory(std::span<const MemoryRegion> regions) = 0;
  Status RegisterMemory(const MemoryRegion& region) { return RegisterMemory({&region, 1}); }
  // Unregisters buffers by their start address. All-or-nothing. Errors: NotFound.
  // Requests in flight on them may fail.
  virtual Status UnregisterMemory(std::span<void* const> addrs) = 0;
  Status UnregisterMemory(void* addr) { return UnregisterMemory({&addr, 1}); }
  // Allocates `length` bytes of zeroed, page-aligned memory and registers it (remote
  // accessible, "cpu"). The first transport of the preference list (options.transport)
  // that allocates memory itself provides it (ucx: UCX memory, which same-host ucx peers
  // write with a memcpy and RDMA NICs register once); otherwise it is anonymous memory.
  // It lives until FreeManagedBuffer or the engine's destruction. Errors: InvalidArgument
  // (length 0), ResourceExhausted (no memory).
  virtual Result<void*> AllocateManagedBuffer(size_t length) = 0;
  // Unregisters (if still registered) and frees memory of AllocateManagedBuffer.
  // Requests in flight on it may fail. Errors: NotFound (not a managed buffer).
  virtual Status FreeManagedBuffer(void* addr) = 0;

  // Finds a peer segment by name ("host:port") and caches its descriptor. Opening the same
  // name twice returns the same id. Errors: NotFound / Unavailable / DeadlineExceeded.
  virtual Result<SegmentId> OpenSegment(const std::string& name) = 0;
  // The cached descriptor of an opened segment (refetched if `refresh`).
  virtual Result<SegmentDescriptor> GetSegmentDescriptor(SegmentId id, bool refresh = false) = 0;
  // Asks the peer itself, over the control plane, whether it is alive and which process it
  // is; returns the round trip. A peer that restarted (another pid) or changed its buffers
  // gets its cached descriptor replaced (and, after a restart, fresh connections), as
  // GetSegmentDescriptor(id, true) would. Errors: NotFound (unknown segment), Unavailable
  // or DeadlineExceeded (no answer within `timeout`; connect_timeout when zero),
  // PermissionDenied (secret mismatch), FailedPrecondition (another engine answers there).
  virtual Result<std::chrono::microseconds> Probe(
      SegmentId id, std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) = 0;
  // Forgets a segment and its connections. Errors: NotFound.
  virtual Status CloseSegment(SegmentId id) = 0;
  // The descriptor this engine publishes.
  virtual SegmentDescriptor LocalDescriptor() const = 0;

  // Reserves a batch of up to `capacity` requests. Errors: InvalidArgument if capacity is 0.
  virtual Result<BatchId> AllocateBatch(size_t capacity) = 0;
  // Starts the requests (appended to the batch; the batch must have room). Returns at once;
  // poll with GetTransferStatus / GetBatchStatus or block with WaitBatch. Every request
  // ends (done or failed) by `timeout` after this call (default_timeout when zero).
  // If `notify` is set it is delivered to each target segment after all of this call's
  // writes to it are done. Errors (nothing started): InvalidArgument for an unknown batch
  // or segment, a range outside the peer's registered buffers, or a full batch.
  virtual Status Submit(BatchId batch, std::span<const TransferRequest> requests,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                        const std::string* notify = nullptr) = 0;
  // State of the index-th request submitted to the batch. Errors: InvalidArgument.
  virtual Result<TransferStatus> GetTransferStatus(BatchId batch, size_t index) = 0;
  // Aggregate: kFailed if any failed (error of the first), kPending if any pending,
  // else kDone; bytes_done summed. Errors: InvalidArgument for an unknown batch.
  virtual Result<TransferStatus> GetBatchStatus(BatchId batch) = 0;
  // Blocks until every request of the batch has ended or `timeout` passes. Polls briefly,
  // then sleeps (does not spin a core). Returns the aggregate status's error, OK if all
  // done, DeadlineExceeded if still pending at the timeout.
  virtual Status WaitBatch(BatchId batch, std::chrono::milliseconds timeout) = 0;
  // Releases a batch. Errors: InvalidArgument (unknown), FailedPrecondition (requests still
  // pending: wait first).
  virtual Status FreeBatch(BatchId batch) = 0;

  // Allocate + Submit + Wait + Free. OK only when every byte arrived.
  virtual Status TransferSync(std::span<const TransferRequest> requests,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                              const std::string* notify = nullptr) = 0;

  // Sends a notification alone. Errors: as OpenSegment, or Unavailable.
  virtual Status SendNotification(SegmentId segment, const std::string& message) = 0;
  // Takes and returns the notifications received and not yet taken (oldest first). At most
  // max_pending_notifications / max_pending_notification_bytes are kept between calls: the
  // oldest are dropped first.
  virtual std::vector<Notification> TakeNotifications() = 0;

  virtual TransferCounters counters() const = 0;
};

}  // namespace ferry
