#include "transfer/control_plane.h"

#include "common/host_port.h"

namespace ferry::transfer {

Result<std::unique_ptr<ControlPlane>> ControlPlane::Create(const TransportOptions& options,
                                                           TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(tcp::TcpServerOptions server_options,
                         tcp::TcpServerOptions::FromExtra(options.extra));
  FERRY_ASSIGN_OR_RETURN(auto server, tcp::TcpServer::Create(options.bind_host, options.port,
                                                             options.secret, host, server_options));
  // One connection per peer: control calls are small and rare.
  auto client = std::make_unique<tcp::TcpClient>(options.secret, 1, options.connect_timeout);
  return std::unique_ptr<ControlPlane>(new ControlPlane(std::move(server), std::move(client)));
}

ControlPlane::ControlPlane(std::unique_ptr<tcp::TcpServer> server,
                           std::unique_ptr<tcp::TcpClient> client)
    : server_(std::move(server)), client_(std::move(client)) {}

ControlPlane::~ControlPlane() {
  client_.reset();  // fail outbound calls first (Aborted), then stop serving
  server_.reset();
}

Result<SegmentDescriptor> ControlPlane::GetDescriptor(const std::string& host, uint16_t port,
                                                      const std::string& what, Deadline deadline) {
  auto op = std::make_shared<tcp::TcpOp>();
  op->type = tcp::FrameType::kGetDescriptor;
  op->deadline = deadline;
  FERRY_RETURN_IF_ERROR(client_->Call(host, port, op));
  auto d = SegmentDescriptor::FromJson(op->reply);
  if (!d.ok()) return d.status().WithContext(what);
  return d;
}

Result<SegmentDescriptor> ControlPlane::FetchDescriptor(const std::string& host_port,
                                                        Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(host_port));
  return GetDescriptor(hp.host, hp.port, "descriptor from " + host_port, deadline);
}

Result<ControlPlane::ProbeReply> ControlPlane::Probe(const SegmentDescriptor& peer,
                                                     Deadline deadline) {
  const auto start = SteadyClock::now();
  FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d, GetDescriptor(peer.host, peer.rpc_port,
                                                            "probe of " + peer.name, deadline));
  ProbeReply reply;
  reply.round_trip =
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - start);
  if (d.name != peer.name) {
    return FailedPreconditionError("probe of " + peer.name + ": engine " + d.name +
                                   " answers at its address");
  }
  reply.descriptor = std::move(d);
  return reply;
}

Status ControlPlane::SendNotification(const SegmentDescriptor& peer, const std::string& from,
                                      const std::string& message, Deadline deadline) {
  auto op = std::make_shared<tcp::TcpOp>();
  op->type = tcp::FrameType::kNotify;
  op->payload = from + message;
  op->aux = static_cast<uint32_t>(from.size());
  op->deadline = deadline;
  return client_->Call(peer.host, peer.rpc_port, op);
}

void ControlPlane::ForgetPeer(const std::string& peer_name) { client_->Forget(peer_name); }

}  // namespace ferry::transfer
