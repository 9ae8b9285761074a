#include "transfer/tcp/tcp_transport.h"

#include <vector>

#include "common/host_port.h"

namespace ferry::transfer::tcp {

Result<std::unique_ptr<TcpTransport>> TcpTransport::Create(const TransportOptions& options,
                                                           TransportHost* host) {
  bool serve = true;
  for (const auto& [k, v] : options.extra) {
    if (k == "tcp_server" && (v == "off" || v == "0" || v == "false")) serve = false;
  }
  FERRY_ASSIGN_OR_RETURN(TcpServerOptions server_options,
                         TcpServerOptions::FromExtra(options.extra));
  std::unique_ptr<TcpServer> server;
  if (serve) {
    FERRY_ASSIGN_OR_RETURN(server, TcpServer::Create(options.bind_host, options.port,
                                                     options.secret, host, server_options));
  }
  auto client = std::make_unique<TcpClient>(options.secret, options.connections_per_peer,
                                            options.connect_timeout);
  return std::unique_ptr<TcpTransport>(
      new TcpTransport(std::move(server), std::move(client), options));
}

TcpTransport::TcpTransport(std::unique_ptr<TcpServer> server, std::unique_ptr<TcpClient> client,
                           const TransportOptions& options)
    : server_(std::move(server)), client_(std::move(client)) {}

TcpTransport::~TcpTransport() {
  client_.reset();  // fail outbound work first (Aborted), then stop serving
  server_.reset();
}

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
  client_->Submit(peer.host, peer.rpc_port, ops);
}

void TcpTransport::ForgetPeer(const std::string& peer_name) { client_->Forget(peer_name); }

Status TcpTransport::TransferDirect(const SegmentDescriptor& peer, TransferOp op, char* local,
                                    uint64_t remote, uint64_t length, Deadline deadline) {
  auto o = std::make_shared<TcpOp>();
  o->type = op == TransferOp::kWrite ? FrameType::kWrite : FrameType::kRead;
  o->local = local;
  o->remote = remote;
  o->length = length;
  o->deadline = deadline;
  return client_->Call(peer.host, peer.rpc_port, std::move(o));
}

Result<SegmentDescriptor> TcpTransport::FetchDescriptor(const std::string& host_port,
                                                        Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(host_port));
  auto op = std::make_shared<TcpOp>();
  op->type = FrameType::kGetDescriptor;
  op->deadline = deadline;
  FERRY_RETURN_IF_ERROR(client_->Call(hp.host, hp.port, op));
  auto d = SegmentDescriptor::FromJson(op->reply);
  if (!d.ok()) return d.status().WithContext("descriptor from " + host_port);
  return d;
}

Status TcpTransport::SendNotification(const SegmentDescriptor& peer, const std::string& from,
                                      const std::string& message, Deadline deadline) {
  auto op = std::make_shared<TcpOp>();
  op->type = FrameType::kNotify;
  op->payload = from + message;
  op->aux = static_cast<uint32_t>(from.size());
  op->deadline = deadline;
  return client_->Call(peer.host, peer.rpc_port, op);
}

Result<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& options,
                                                      TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(auto t, TcpTransport::Create(options, host));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ferry::transfer::tcp
