// TcpTransport: the "tcp" Transport. Serves the RPC port (TcpServer: handshake,
// notifications, inbound WRITE/READ) and moves slices to peers over pooled, pipelined
// connections (TcpClient). Also the engine's control channel: FetchDescriptor and
// SendNotification.
//
//   FERRY_ASSIGN_OR_RETURN(auto tcp, TcpTransport::Create(options, host));
//   uint16_t rpc_port = tcp->port();
//   FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d, tcp->FetchDescriptor("127.0.0.1:17000", dl));
//
// options.extra ("tcp_server", "off") makes a client-only instance (used when the engine
// creates a second tcp, e.g. inside "fault:tcp", next to the one that owns the RPC port).
// The server's threads, connection caps and timeouts come from options.extra too
// (tcp_server_threads, tcp_max_connections, ...: see tcp_server_options.h).
//
// Thread safety: all methods are thread-safe. Destruction stops the server, fails pending
// slices with Aborted and joins every thread.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "transfer/tcp/tcp_client.h"
#include "transfer/tcp/tcp_server.h"
#include "transfer/transport.h"

namespace ferry::transfer::tcp {

class TcpTransport : public Transport {
 public:
  // `host` outlives the transport. Errors: AlreadyExists (port taken), InvalidArgument
  // (bad address or server setting), ResourceExhausted (no server thread could start).
  static Result<std::unique_ptr<TcpTransport>> Create(const TransportOptions& options,
                                                      TransportHost* host);
  ~TcpTransport() override;

  std::string_view name() const override { return "tcp"; }
  uint16_t port() const { return server_ ? server_->port() : 0; }
  bool CanReach(const SegmentDescriptor& peer) const override { return true; }
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  void ForgetPeer(const std::string& peer_name) override;

  // Asks the engine at `host_port` for its descriptor (P2P handshake).
  // Errors: InvalidArgument (bad name or reply), Unavailable, DeadlineExceeded,
  // PermissionDenied (secret mismatch).
  Result<SegmentDescriptor> FetchDescriptor(const std::string& host_port, Deadline deadline);
  // Delivers (from, message) to the engine at `peer`; OK once the peer has queued it.
  Status SendNotification(const SegmentDescriptor& peer, const std::string& from,
                          const std::string& message, Deadline deadline);
  // Moves one slice and waits for it: on the caller's thread when a pooled connection is
  // idle (TcpClient::Call). Errors: the peer's refusal (OutOfRange, ...), Unavailable,
  // DeadlineExceeded, PermissionDenied.
  Status TransferDirect(const SegmentDescriptor& peer, TransferOp op, char* local, uint64_t remote,
                        uint64_t length, Deadline deadline);

 private:
  TcpTransport(std::unique_ptr<TcpServer> server, std::unique_ptr<TcpClient> client,
               const TransportOptions& options);

  // Declared in this order so the client (initiator threads) stops before the server.
  std::unique_ptr<TcpServer> server_;  // null for a client-only instance
  std::unique_ptr<TcpClient> client_;
};

// Factory for the registry ("tcp").
Result<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& options,
                                                      TransportHost* host);

}  // namespace ferry::transfer::tcp
