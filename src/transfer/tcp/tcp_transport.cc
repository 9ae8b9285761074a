#include "transfer/tcp/tcp_transport.h"

#include <algorithm>
#include <vector>

namespace ferry::transfer::tcp {
namespace {

// A single slice up to this size may run on the caller's thread (TransferNow). Larger
// ones gain nothing from it (measured at 4 MiB) and use the pipelined path.
constexpr size_t kDirectMax = 256u << 10;

}  // namespace

Result<std::unique_ptr<TcpTransport>> TcpTransport::Create(const TransportOptions& options) {
  if (options.connections_per_peer < 1) {
    return InvalidArgumentError("tcp: connections_per_peer must be at least 1");
  }
  return std::unique_ptr<TcpTransport>(new TcpTransport(options));
}

TcpTransport::TcpTransport(const TransportOptions& options)
    : client_(options.secret, options.connections_per_peer, options.connect_timeout) {}

TcpTransport::~TcpTransport() = default;

void TcpTransport::Submit(const SegmentDescriptor& peer, std::span<Slice> slices,
                          Deadline deadline) {
  std::vector<std::shared_ptr<TcpOp>> ops;
  ops.reserve(slices.size());
  for (Slice& s : slices) {
    auto op = std::make_shared<TcpOp>();
    op->type = s.op == TransferOp::kWrite ? FrameType::kWrite : FrameType::kRead;
    op->local = s.local;
    op->remote = s.remote;
    op->length = s.length;
    op->deadline = deadline;
    op->done = std::move(s.done);
    ops.push_back(std::move(op));
  }
  client_.Submit(peer.host, peer.rpc_port, ops);
}

void TcpTransport::Warm(const SegmentDescriptor& peer, Deadline deadline) {
  client_.Connect(peer.host, peer.rpc_port, deadline).IgnoreError();
}

bool TcpTransport::TransferNow(const SegmentDescriptor& peer, Slice& slice, Deadline deadline) {
  if (slice.length == 0 || slice.length > kDirectMax) return false;
  // Call runs the op on this thread over an idle pooled connection when there is one
  // (TcpConnection::TryRunInline), else through the pipelined path, and waits.
  auto op = std::make_shared<TcpOp>();
  op->type = slice.op == TransferOp::kWrite ? FrameType::kWrite : FrameType::kRead;
  op->local = slice.local;
  op->remote = slice.remote;
  op->length = slice.length;
  op->deadline = deadline;
  slice.done(client_.Call(peer.host, peer.rpc_port, std::move(op)));
  return true;
}

void TcpTransport::ForgetPeer(const std::string& peer_name) { client_.Forget(peer_name); }

void TcpTransport::DescribeLocal(SegmentDescriptor* descriptor) const {
  auto& t = descriptor->transports;
  if (std::find(t.begin(), t.end(), "tcp") == t.end()) t.push_back("tcp");
}

Result<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& options,
                                                      TransportHost* /*host*/) {
  FERRY_ASSIGN_OR_RETURN(auto t, TcpTransport::Create(options));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ferry::transfer::tcp
