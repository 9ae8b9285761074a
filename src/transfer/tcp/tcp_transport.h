// TcpTransport: the initiator half of the "tcp" data transport. Moves slices to a peer's
// RPC port over pooled, pipelined connections (TcpClient); the peer's ControlPlane server
// answers those WRITE / READ frames (see control_plane.h). Reaches every peer.
//
//   FERRY_ASSIGN_OR_RETURN(auto tcp, TransportRegistry::Create("tcp", options, host));
//   tcp->Submit(peer, slices, deadline);   // each slice's done() runs once
//
// Thread safety: all methods are thread-safe. Destruction fails pending slices with
// Aborted and joins every thread.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "transfer/tcp/tcp_client.h"
#include "transfer/transport.h"

namespace ferry::transfer::tcp {

class TcpTransport : public Transport {
 public:
  static Result<std::unique_ptr<TcpTransport>> Create(const TransportOptions& options);
  ~TcpTransport() override;

  std::string_view name() const override { return "tcp"; }
  bool CanReach(const SegmentDescriptor& peer) const override { return peer.rpc_port != 0; }
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  // Opens the pooled connections to the peer.
  void Warm(const SegmentDescriptor& peer, Deadline deadline) override;
  bool TransferNow(const SegmentDescriptor& peer, Slice& slice, Deadline deadline) override;
  void ForgetPeer(const std::string& peer_name) override;
  // Adds "tcp" to descriptor->transports.
  void DescribeLocal(SegmentDescriptor* descriptor) const override;

 private:
  explicit TcpTransport(const TransportOptions& options);

  TcpClient client_;
};

// Factory for the registry ("tcp").
Result<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& options,
                                                      TransportHost* host);

}  // namespace ferry::transfer::tcp
