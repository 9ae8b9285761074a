// Transport: a data path under the transfer engine, one implementation per medium.
//
// The engine validates every request against the peer's descriptor, cuts it into slices,
// and hands slices to the first transport of the peer's list that can reach it (the list
// comes from TransferEngineOptions::transport, e.g. shm, ucx, tcp). A transport only moves
// bytes and reports each slice's end exactly once; descriptors and notifications travel
// over the engine's ControlPlane (control_plane.h). It knows nothing of models, HTTP or
// connectors.
//
// Transports are created by name from TransportRegistry (transport_registry.cc is the one
// place where optional transports are switched on):
//
//   FERRY_ASSIGN_OR_RETURN(auto tcp, TransportRegistry::Create("tcp", options, host));
//   tcp->Submit(peer, slices, deadline);   // each slice's done() runs once
//
// Thread safety: all methods may be called from any thread concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/deadline.h"
#include "ferry/segment.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"

namespace ferry::transfer {

// What the engine offers its transports (implemented by the engine).
class TransportHost {
 public:
  virtual ~TransportHost() = default;
  // The descriptor this engine publishes (name, pid, host id, buffers).
  virtual SegmentDescriptor LocalDescriptor() const = 0;
  // Target side: OK if [addr, addr + len) lies inside one registered, remote-accessible
  // buffer; otherwise OutOfRange / PermissionDenied with a message naming the range.
  virtual Status CheckInboundRange(uint64_t addr, uint64_t len) const = 0;
  // Target side: a notification arrived from `from`.
  virtual void DeliverNotification(Notification n) = 0;
  // Target side: a peer wrote (or read) `bytes` into (from) our memory.
  virtual void CountInbound(TransferOp op, uint64_t bytes) = 0;
  // Target side: an inbound frame or connection was refused (bad frame, failed HELLO,
  // missed deadline, over a connection cap).
  virtual void CountRejected() = 0;
};

struct TransportOptions {
  std::string bind_host = "127.0.0.1";  // Address the transport's server binds to.
  uint16_t port = 0;                    // Port to bind (0: any free one).
  std::string secret;                   // Shared secret; "" for none.
  int connections_per_peer = 2;
  size_t slice_size = 4 << 20;
  std::chrono::milliseconds connect_timeout{5000};
  std::string device_name;  // NICs to use, comma separated ("" = all); see TransferEngineOptions
  // Transport-specific settings ("fault" reads drop/delay/corrupt rates from here),
  // "key=value" pairs.
  std::vector<std::pair<std::string, std::string>> extra;
};

// One slice: contiguous on both sides, already checked against the peer's descriptor.
struct Slice {
  TransferOp op = TransferOp::kWrite;
  char* local = nullptr;
  uint64_t remote = 0;
  size_t length = 0;
  // Called exactly once with OK (bytes are in the destination) or the error.
  // May run on a transport thread or inline inside Submit; must not block.
  std::function<void(const Status&)> done;
};

// Kinds of memory a transport can move to and from (a bit mask).
enum MemoryKind : uint32_t {
  kHostMemory = 1u << 0,  // ordinary process memory (DRAM)
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual std::string_view name() const = 0;

  // Capabilities the engine plans with (never the name).
  // Whether it reaches only processes on this host (shm).
  virtual bool same_host_only() const { return false; }
  // The MemoryKind bits it can move.
  virtual uint32_t memory_kinds() const { return kHostMemory; }

  // Whether this transport can move data to/from `peer` now (e.g. shm: same host_id and the
  // kernel allows cross-memory attach to peer.pid; ucx: the peer published ucx worker
  // addresses and an endpoint to it can be made). A refusal is remembered: once the
  // transport could not serve a peer for a reason other than the data (handshake refused,
  // kernel refused, no endpoint), CanReach answers false until ForgetPeer. The engine asks
  // again after every failed slice, and a transport that now answers false has refused:
  // the slice moves to the next transport in the peer's list.
  virtual bool CanReach(const SegmentDescriptor& peer) const = 0;

  // Starts moving `slices` to/from `peer`. Every slice's done() is called exactly once,
  // by `deadline` at the latest (DeadlineExceeded), also when the peer dies (Unavailable)
  // or the transport is destroyed (Aborted).
  virtual void Submit(const SegmentDescriptor& peer, std::span<Slice> slices,
                      Deadline deadline) = 0;

  // Prepares for moving data to `peer` (connections, a session, an endpoint) so that the
  // first transfer does not pay for it; the engine calls it when a segment is opened, for
  // the first transport of its route. Failures are not reported here: the first transfer
  // meets and reports them.
  virtual void Warm(const SegmentDescriptor& peer, Deadline deadline) {}

  // Moves one slice on the caller's thread when this transport has a faster path for it
  // (no thread hop: a single small request in TransferSync). Returns false, leaving
  // `slice` untouched, when it has none (the caller uses Submit); true once slice.done ran.
  virtual bool TransferNow(const SegmentDescriptor& peer, Slice& slice, Deadline deadline) {
    return false;
  }

  // Drops cached connections/state for a peer (it restarted or was closed).
  virtual void ForgetPeer(const std::string& peer_name) {}

  // Adds what peers need to reach this transport to the engine's own descriptor: its name
  // to `transports`, and e.g. transport_info["shm"] (a socket path) or ["ucx"] (worker
  // address and rkeys). Called for every descriptor the engine publishes.
  virtual void DescribeLocal(SegmentDescriptor* descriptor) const {}
  // The engine's registrations changed (after the change is in effect).
  virtual void LocalMemoryChanged() {}

  // Whether this transport allocates memory itself that it serves better than memory it
  // only maps (ucx: UCX's shared memory, which same-host UCX peers write with a plain
  // memcpy instead of emulated RMA; RDMA NICs register it when it is allocated). The
  // engine's AllocateManagedBuffer asks the transports in preference order.
  virtual bool allocates_memory() const { return false; }
  // `length` bytes of zeroed, page-aligned memory, owned by the transport until FreeMemory
  // or its destruction; its pages need not exist before they are touched (a store segment
  // may be far larger than what it ever holds). Registering it with the engine is the caller's
  // business. Errors: Unavailable when it cannot allocate now (the caller uses ordinary memory
  // instead).
  virtual Result<void*> AllocateMemory(size_t length) {
    return UnavailableError(std::string(name()) + " does not allocate memory");
  }
  // Frees memory of AllocateMemory. It must no longer be registered with the engine.
  // Errors: NotFound (not ours), FailedPrecondition (still registered).
  virtual Status FreeMemory(void* addr) {
    return NotFoundError(std::string(name()) + " allocated no memory");
  }
};

using TransportFactory = std::function<Result<std::unique_ptr<Transport>>(
    const TransportOptions& options, TransportHost* host)>;

// Name -> factory. Built-in transports are registered by RegisterBuiltinTransports()
// (transport_registry.cc), which Create() calls once. A wrapper ("fault") decorates another
// transport ("fault:tcp") and is transparent: it answers every capability question as its
// inner transport does.
class TransportRegistry {
 public:
  enum class Kind { kData, kWrapper };
  // Errors: AlreadyExists if the name is taken.
  static Status Register(const std::string& name, TransportFactory factory,
                         Kind kind = Kind::kData);
  // "name" or "wrapper:inner" (a wrapper factory gets the inner's name in
  // options.extra as ("inner", name)). Errors: NotFound listing the known names.
  static Result<std::unique_ptr<Transport>> Create(const std::string& name,
                                                   const TransportOptions& options,
                                                   TransportHost* host);
  // Every registered name, sorted.
  static std::vector<std::string> Names();
  // The names of one kind, sorted (test suites run over every data transport, and over
  // each wrapper around each of them).
  static std::vector<std::string> Names(Kind kind);
};

}  // namespace ferry::transfer
