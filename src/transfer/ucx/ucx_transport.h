// UcxTransport: the "ucx" Transport. Moves slices with UCX RMA (ucp_put_nbx / ucp_get_nbx)
// straight between this process's memory and a peer's registered buffers; the target runs
// no Ferry code per transfer. UCX picks the medium: RDMA NICs (rc, ud, dc) where there are
// some, shared memory (posix, sysv, cma) to same-host peers, tcp otherwise.
//
//   TransportOptions o;
//   o.device_name = "mlx5_0:1,mlx5_1:1";      // UCX_NET_DEVICES; "" = all
//   o.extra = {{"ucx_tls", "rc,ud,sm"}};      // UCX_TLS; see ucx_settings.h
//   FERRY_ASSIGN_OR_RETURN(auto ucx, TransportRegistry::Create("ucx", o, host));
//   if (ucx->CanReach(peer)) ucx->Submit(peer, slices, deadline);
//
// What peers are told: DescribeLocal puts transport_info["ucx"] (UcxPeerInfo JSON: the
// worker address and, per registered buffer, its range and packed rkey). LocalMemoryChanged
// maps new registrations and unmaps removed ones before it returns.
//
// Reachability: the peer publishes a well-formed transport_info["ucx"] and has not been
// refused since the last ForgetPeer. A refusal is remembered per peer process (name + pid):
// malformed ucx info, an endpoint UCX cannot create, rkeys it cannot unpack.
//
// Errors per slice: PermissionDenied for a range outside the ucx buffers the peer
// published; Unavailable when the peer is refused, its endpoint fails (the peer died) or is
// closed because another submission on it missed its deadline; DeadlineExceeded; Aborted
// when the transport is destroyed.
//
// Trust: UCX's tcp and shared-memory transports write where the initiator says, within
// the process that published the worker address; only RDMA NICs check rkeys in hardware.
// Use ucx on a fabric whose hosts trust each other (docs/ucx.md).
//
// Thread safety: all methods are thread-safe. Every UCX call runs on one progress thread
// (see ucx_worker.h); slices' done() run on it.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "common/mutex.h"
#include "transfer/transport.h"
#include "transfer/ucx/ucx_peer_info.h"
#include "transfer/ucx/ucx_worker.h"

namespace ferry::transfer::ucx {

class UcxTransport : public Transport {
 public:
  // With a null host the transport only initiates (it publishes no buffers).
  // Errors: InvalidArgument for a bad setting (naming it); Unavailable when UCX has no
  // usable transport or device for these settings.
  static Result<std::unique_ptr<UcxTransport>> Create(const TransportOptions& options,
                                                      TransportHost* host);
  ~UcxTransport() override;

  std::string_view name() const override { return "ucx"; }
  bool CanReach(const SegmentDescriptor& peer) const override;
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  // Forgets refusals and closes endpoints of every process named `peer_name`.
  void ForgetPeer(const std::string& peer_name) override;
  // transport_info["ucx"]: this transport's UcxPeerInfo JSON.
  void DescribeLocal(SegmentDescriptor* descriptor) const override;
  // Re-reads the host's buffers and (un)maps them; returns once done (at most 5 s).
  void LocalMemoryChanged() override;
  // UCX memory (ucp_mem_map with UCP_MEM_MAP_ALLOCATE: shared memory where UCX has it).
  // Registered with the engine it is published with its allocation's rkey, so same-host
  // UCX peers put into it with a memcpy. Freed by FreeMemory or with the transport.
  bool allocates_memory() const override { return true; }
  Result<void*> AllocateMemory(size_t length) override;
  Status FreeMemory(void* addr) override;

  // Counters since creation.
  UcxCounters counters() const { return worker_->counters(); }
  // Whether `peer` is refused now (and why), for tests and logs.
  bool IsRefused(const SegmentDescriptor& peer) const;

 private:
  struct Parsed {
    uint64_t version = 0;
    std::string raw;
    std::shared_ptr<const UcxPeerInfo> info;  // null when malformed
    Status error;
  };

  explicit UcxTransport(TransportHost* host);
  static std::string PeerKey(const SegmentDescriptor& peer);
  // The peer's parsed ucx info (cached per peer process and descriptor version).
  Result<std::shared_ptr<const UcxPeerInfo>> InfoFor(const SegmentDescriptor& peer) const;
  void Refuse(const std::string& name, const std::string& key, const Status& why) const;

  TransportHost* const host_;

  mutable Mutex mu_;
  mutable std::map<std::string, Parsed> parsed_ FERRY_GUARDED_BY(mu_);        // by peer key
  mutable std::map<std::string, std::string> refused_ FERRY_GUARDED_BY(mu_);  // key -> peer name
  std::string local_info_ FERRY_GUARDED_BY(mu_);                              // published JSON

  std::unique_ptr<UcxWorker> worker_;  // last: its thread stops before the above go
};

// Factory for the registry ("ucx").
Result<std::unique_ptr<Transport>> CreateUcxTransport(const TransportOptions& options,
                                                      TransportHost* host);

}  // namespace ferry::transfer::ucx
