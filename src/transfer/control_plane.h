// ControlPlane: the engine's RPC port and the control calls every data transport shares.
//
// One framed protocol runs on the RPC port (tcp/wire.h). Its control frames belong here:
// the HELLO challenge-response, GET_DESCRIPTOR (the P2P handshake: a peer asks this engine
// for its SegmentDescriptor; also the probe: is it alive, is it the same process) and
// NOTIFY (a message delivered after the data it follows).
// Its WRITE / READ frames are the target half of the "tcp" data transport, which the same
// server answers (TransportHost::CheckInboundRange decides what may be touched), so a
// tcp-only deployment needs one port. Data transports (tcp's initiator half, shm, ucx)
// only move bytes; none of them carries descriptors or notifications.
//
//   FERRY_ASSIGN_OR_RETURN(auto cp, ControlPlane::Create(options, host));
//   uint16_t rpc_port = cp->port();
//   FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d, cp->FetchDescriptor("127.0.0.1:17000", dl));
//   FERRY_RETURN_IF_ERROR(cp->SendNotification(d, "me:1", "kv ready", dl));
//   FERRY_ASSIGN_OR_RETURN(ControlPlane::ProbeReply p, cp->Probe(d, dl));  // alive? same pid?
//
// Control calls go over their own connection per peer (never queued behind data slices).
// The server's threads, connection caps and timeouts come from options.extra
// (tcp_server_threads, tcp_max_connections, ...: tcp/tcp_server_options.h).
//
// Thread safety: all methods are thread-safe. Destruction fails calls in flight with
// Aborted, stops the server and joins every thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/deadline.h"
#include "ferry/segment.h"
#include "ferry/status.h"
#include "transfer/tcp/tcp_client.h"
#include "transfer/tcp/tcp_server.h"
#include "transfer/transport.h"

namespace ferry::transfer {

class ControlPlane {
 public:
  // Binds options.bind_host:options.port (0: any free port). `host` outlives the control
  // plane. Errors: AlreadyExists (port taken), InvalidArgument (bad address or server
  // setting), ResourceExhausted (no server thread could start).
  static Result<std::unique_ptr<ControlPlane>> Create(const TransportOptions& options,
                                                      TransportHost* host);
  ~ControlPlane();

  // The RPC port this engine serves.
  uint16_t port() const { return server_->port(); }

  // Asks the engine at `host_port` for its descriptor (P2P handshake). Errors:
  // InvalidArgument (bad name or reply), Unavailable, DeadlineExceeded, PermissionDenied
  // (secret mismatch).
  Result<SegmentDescriptor> FetchDescriptor(const std::string& host_port, Deadline deadline);

  // What a probe learned: the peer's own descriptor and how long the answer took.
  struct ProbeReply {
    SegmentDescriptor descriptor;
    std::chrono::microseconds round_trip{0};
  };
  // Asks the engine at peer.host:peer.rpc_port itself (not a metadata service) for its
  // descriptor, over the control connection: it answers, so it is alive, and its answer
  // says which process it is now (pid) and which buffers it has (version). Errors: as
  // FetchDescriptor; FailedPrecondition when an engine of another name answers there.
  Result<ProbeReply> Probe(const SegmentDescriptor& peer, Deadline deadline);

  // Delivers (from, message) to the engine at `peer`; OK once the peer has queued it.
  Status SendNotification(const SegmentDescriptor& peer, const std::string& from,
                          const std::string& message, Deadline deadline);

  // Drops the control connection to `peer_name` ("host:port"; it restarted or was closed).
  void ForgetPeer(const std::string& peer_name);

 private:
  ControlPlane(std::unique_ptr<tcp::TcpServer> server, std::unique_ptr<tcp::TcpClient> client);
  // GET_DESCRIPTOR to host:port; a reply that does not parse is an error naming `what`.
  Result<SegmentDescriptor> GetDescriptor(const std::string& host, uint16_t port,
                                          const std::string& what, Deadline deadline);

  // Declared in this order so the client (its connection threads) stops before the server.
  std::unique_ptr<tcp::TcpServer> server_;
  std::unique_ptr<tcp::TcpClient> client_;
};

}  // namespace ferry::transfer
