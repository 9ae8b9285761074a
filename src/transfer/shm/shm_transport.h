// ShmTransport: the "shm" Transport. Same-host, one-copy data path: the initiator copies
// straight between its memory and the peer process's memory with cross-memory attach
// (process_vm_writev / process_vm_readv on peer.pid). The target runs no code per transfer.
//
//   FERRY_ASSIGN_OR_RETURN(auto shm, TransportRegistry::Create("shm", options, host));
//   if (shm->CanReach(peer)) shm->Submit(peer, slices, deadline);
//
// Reachability: the peer's host_id equals ours (kernel boot id), it lists "shm" in its
// transports, and the kernel has not refused us its pid before. At creation the transport
// allows any process to attach to this one (PR_SET_PTRACER_ANY, where Yama is active), so
// that same-host peers can reach our registered buffers.
//
// Errors per slice (see cma_copy.h): Unimplemented when the kernel refuses CMA to the peer
// (the refusal is remembered and CanReach turns false; the engine retries such slices once
// over tcp), Unavailable when the peer process is gone, OutOfRange for unmapped ranges,
// DeadlineExceeded, Aborted when the transport is destroyed with slices still queued.
//
// Execution: a Submit whose slices total at most kInlineBytes is copied on the caller's
// thread before Submit returns (no wake-up: the 4 KiB round trip is one syscall). Larger
// submissions go to a pool of worker threads (2 by default, options.extra "shm_threads"),
// which poll briefly before sleeping. Slices of one Submit may complete in any order.
//
// Thread safety: all methods are thread-safe. The destructor joins the workers and fails
// every slice still queued with Aborted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "transfer/shm/cma_copy.h"
#include "transfer/transport.h"

namespace ferry::transfer::shm {

class ShmTransport : public Transport {
 public:
  // Submissions up to this many bytes in total are copied inline in Submit.
  static constexpr size_t kInlineBytes = 256u << 10;
  // Slices at least this large are split across the worker threads.
  static constexpr size_t kSplitBytes = 1u << 20;

  // `host` may be null (it is only used for the local descriptor's host id fallback).
  // options.extra: "shm_threads" (1..16, default 2). Errors: InvalidArgument for a bad
  // shm_threads; Unimplemented if the host id cannot be read (not Linux).
  static Result<std::unique_ptr<ShmTransport>> Create(const TransportOptions& options,
                                                      TransportHost* host,
                                                      CmaCalls calls = RealCmaCalls());
  ~ShmTransport() override;

  std::string_view name() const override { return "shm"; }
  bool CanReach(const SegmentDescriptor& peer) const override;
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  // Forgets a remembered refusal for this peer (it may have restarted with other rights).
  void ForgetPeer(const std::string& peer_name) override;

  // This machine's id as published in descriptors (the kernel boot id).
  const std::string& host_id() const { return host_id_; }
  // Whether the kernel has refused CMA to `pid` since creation (or since ForgetPeer).
  bool IsRefused(int64_t pid) const;

 private:
  struct Job {
    pid_t pid = 0;
    std::string peer_name;
    Slice slice;
    Deadline deadline = Deadline::Infinite();
  };

  ShmTransport(std::string host_id, int threads, CmaCalls calls);
  // Cuts `slice` into at most `parts` pieces whose joint completion calls slice.done once.
  static void SplitSlice(Slice slice, size_t parts, std::vector<Slice>* out);
  // Copies one slice and calls its done() (never under a lock).
  void Run(Job& job);
  void WorkerLoop();

  const std::string host_id_;
  const CmaCalls calls_;

  mutable std::mutex refused_mu_;
  std::map<int64_t, std::string> refused_;  // pid -> peer name. GUARDED_BY(refused_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;          // GUARDED_BY(mu_)
  int sleepers_ = 0;               // workers waiting on cv_. GUARDED_BY(mu_)
  bool stop_ = false;              // GUARDED_BY(mu_)
  std::atomic<size_t> queued_{0};  // queue_.size(), readable without the lock (polling)
  std::vector<std::thread> workers_;
};

// Factory for the registry ("shm").
Result<std::unique_ptr<Transport>> CreateShmTransport(const TransportOptions& options,
                                                      TransportHost* host);

// The kernel boot id (/proc/sys/kernel/random/boot_id, trimmed), or "" if unreadable.
std::string ReadHostId();

}  // namespace ferry::transfer::shm
