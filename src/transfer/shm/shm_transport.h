// ShmTransport: the "shm" Transport. Same-host, one-copy data path: the initiator copies
// straight between its memory and the peer process's memory with cross-memory attach
// (process_vm_writev / process_vm_readv on peer.pid). The target runs no code per transfer.
//
//   FERRY_ASSIGN_OR_RETURN(auto shm, TransportRegistry::Create("shm", options, host));
//   if (shm->CanReach(peer)) shm->Submit(peer, slices, deadline);
//
// Trust: a peer's descriptor is only its word. Before the first copy the transport opens a
// ShmSession with the process behind the descriptor's shm socket (shm_session.h): the
// kernel names that process (SO_PEERCRED), the MACs prove it holds the deployment secret,
// and it lists its own buffers. Copies then go only to that pid and only inside those
// buffers; the peer pushes changes to its registrations over the session, and the session
// notices the process exiting. The target side serves sessions with a ShmSessionServer
// (which also grants ptrace permission where Yama requires it, narrowly; see there).
//
// Reachability: the peer's host_id equals ours (kernel boot id), it lists "shm" in its
// transports and an engine socket of this user in transport_info["shm"], and neither the
// handshake nor the kernel has refused us that peer before.
//
// Errors per slice (see cma_copy.h): Unimplemented when the handshake fails (no socket,
// another process behind it, another secret, a refusal) or the kernel refuses CMA to the
// peer (the refusal is remembered and CanReach turns false; the engine retries such slices
// once over tcp), PermissionDenied for a range outside the buffers the peer process
// registered, Unavailable when the peer process is gone, OutOfRange for unmapped ranges,
// DeadlineExceeded, Aborted when the transport is destroyed with slices still queued.
//
// Shared memory: AllocateMemory gives memfd memory (shared_memory_pool.h). Registered, it
// is passed to each authenticated session's initiator, which maps it (peer_mapping.h) and
// copies into and out of it with memcpy on the same threads (no syscall per copy, and
// user-space copies are several times faster than the kernel's on some CPUs). Every other
// buffer is reached by cross-memory attach.
//
// Execution: small slices are grouped (kGroupBytes) and each group is copied with one
// process_vm_writev / readv over all of its slices. A Submit whose slices total at most
// kInlineBytes is copied on the caller's thread before Submit returns (no wake-up: the
// 4 KiB round trip is one syscall). Larger submissions go to a pool of worker threads
// (2 by default, options.extra "shm_threads"), which poll briefly before sleeping; the
// caller copies the last group itself meanwhile. Slices of one Submit may complete in any
// order.
//
// Thread safety: all methods are thread-safe. The destructor joins the workers and fails
// every slice still queued with Aborted.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "transfer/shm/cma_copy.h"
#include "transfer/shm/shared_memory_pool.h"
#include "transfer/shm/shm_session.h"
#include "transfer/shm/shm_session_server.h"
#include "transfer/transport.h"

namespace ferry::transfer::shm {

class ShmTransport : public Transport {
 public:
  // Submissions up to this many bytes in total are copied inline in Submit.
  static constexpr size_t kInlineBytes = 256u << 10;
  // Slices at least this large are split across the worker threads.
  static constexpr size_t kSplitBytes = 1u << 20;
  // Smaller slices are grouped into jobs of up to this many bytes (and kCmaMaxRanges
  // slices), each copied with one syscall.
  static constexpr size_t kGroupBytes = 1u << 20;

  // `host` answers this engine's descriptor to same-host peers' sessions; with a null host
  // the transport only initiates (nobody can copy into this process). options.secret keys
  // the handshake. options.extra: "shm_threads" (1..16, default 2). Errors: InvalidArgument
  // for a bad shm_threads; Unimplemented if the host id cannot be read (not Linux) or the
  // session socket cannot be served.
  static Result<std::unique_ptr<ShmTransport>> Create(const TransportOptions& options,
                                                      TransportHost* host,
                                                      CmaCalls calls = RealCmaCalls());
  ~ShmTransport() override;

  std::string_view name() const override { return "shm"; }
  bool same_host_only() const override { return true; }
  bool CanReach(const SegmentDescriptor& peer) const override;
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  // Opens the session with the peer process (a failed handshake is remembered as a
  // refusal, as in Submit).
  void Warm(const SegmentDescriptor& peer, Deadline deadline) override;
  // Forgets a remembered refusal and the session for this peer (it may have restarted).
  void ForgetPeer(const std::string& peer_name) override;
  // "shm" in transports and transport_info["shm"]: the session socket's path.
  void DescribeLocal(SegmentDescriptor* descriptor) const override;
  // Pushes the new registrations to every session.
  void LocalMemoryChanged() override;
  // Memory same-host peers map (a sealed memfd): only with a host (a target).
  bool allocates_memory() const override { return server_ != nullptr; }
  Result<void*> AllocateMemory(size_t length) override;
  // Errors: NotFound, FailedPrecondition (the host still registers it).
  Status FreeMemory(void* addr) override;

  // This machine's id as published in descriptors (the kernel boot id).
  const std::string& host_id() const { return host_id_; }
  // Whether the kernel has refused CMA to `pid` since creation (or since ForgetPeer).
  bool IsRefused(int64_t pid) const;

 private:
  // Slices copied by one worker, as few syscalls as the kernel allows (CmaCopyV).
  struct Job {
    pid_t pid = 0;
    std::string peer_name;
    std::shared_ptr<ShmSession> session;  // for its shared-buffer mappings
    std::vector<Slice> slices;
    Deadline deadline = Deadline::Infinite();
  };

  ShmTransport(std::string host_id, int threads, CmaCalls calls, std::string secret,
               TransportHost* host, std::unique_ptr<SharedMemoryPool> pool,
               std::unique_ptr<ShmSessionServer> server);
  // The verified session with `peer`, opened (within `deadline`, at most 1 s) if needed.
  // Errors: Unimplemented (see the class comment).
  Result<std::shared_ptr<ShmSession>> SessionFor(const SegmentDescriptor& peer, Deadline deadline);
  // SessionFor, remembering a failed handshake as a refusal of the peer.
  Result<std::shared_ptr<ShmSession>> OpenSession(const SegmentDescriptor& peer, Deadline deadline);
  void DropSession(const std::string& peer_name);
  // Cuts `slice` into at most `parts` pieces whose joint completion calls slice.done once.
  static void SplitSlice(Slice slice, size_t parts, std::vector<Slice>* out);
  // Copies the job's slices and calls their done() (never under a lock).
  void Run(Job& job);
  // Copies (memcpy) and completes the slices that lie in the view's mapped shared buffers,
  // leaving the others in `slices`, in order.
  static void CopyIntoMappings(const ShmSession::View& view, std::vector<Slice>* slices);
  void WorkerLoop();

  const std::string host_id_;
  const CmaCalls calls_;
  const std::string secret_;
  TransportHost* const host_;                     // null: initiator only
  const std::unique_ptr<SharedMemoryPool> pool_;  // outlives server_, which shares from it
  std::unique_ptr<ShmSessionServer> server_;      // null without a host

  Mutex sessions_mu_;
  // by peer name
  std::map<std::string, std::shared_ptr<ShmSession>> sessions_ FERRY_GUARDED_BY(sessions_mu_);

  mutable Mutex refused_mu_;
  std::map<int64_t, std::string> refused_ FERRY_GUARDED_BY(refused_mu_);  // pid -> peer name

  Mutex mu_;
  CondVar cv_;
  std::deque<Job> queue_ FERRY_GUARDED_BY(mu_);
  int sleepers_ FERRY_GUARDED_BY(mu_) = 0;  // workers waiting on cv_
  bool stop_ FERRY_GUARDED_BY(mu_) = false;
  std::atomic<size_t> queued_{0};  // queue_.size(), readable without the lock (polling)
  std::vector<std::thread> workers_;
};

// Factory for the registry ("shm").
Result<std::unique_ptr<Transport>> CreateShmTransport(const TransportOptions& options,
                                                      TransportHost* host);

// The kernel boot id (/proc/sys/kernel/random/boot_id, trimmed), or "" if unreadable.
std::string ReadHostId();

}  // namespace ferry::transfer::shm
