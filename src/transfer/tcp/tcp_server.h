// TcpServer: the target side of the tcp transport and the P2P handshake.
//
// Listens on the address asked for (never widened to 0.0.0.0) and serves every accepted
// connection from a fixed set of threads: one accept thread and
// TcpServerOptions::io_threads I/O threads (ServerIoLoop), each an epoll loop over its
// share of the connections. No thread is started after Create. The connections answer
// HELLO / HELLO_PROOF / GET_DESCRIPTOR / NOTIFY / WRITE / READ frames (see wire.h and
// server_connection.h): WRITE payloads go straight into the target memory after
// TransportHost::CheckInboundRange accepted the range, READ data is sent straight from it.
// A bad range is answered with an error and counted; a malformed frame, a failed
// handshake or a missed deadline closes that connection only.
//
// Bounds: at most max_connections connections in all and max_connections_per_peer from
// one IP address; more are accepted and closed at once, counted with
// TransportHost::CountRejected and logged at most once a second. Out of file descriptors
// (EMFILE / ENFILE), the accept thread frees a spare descriptor to accept and close what
// waits, then pauses accepting briefly: it neither spins nor gives up.
//
//   TcpServerOptions limits;                      // or TcpServerOptions::FromExtra(extra)
//   FERRY_ASSIGN_OR_RETURN(auto server,
//                          TcpServer::Create("127.0.0.1", 0, secret, host, limits));
//   uint16_t port = server->port();
//   server.reset();  // stops accepting, closes connections, joins every thread
//
// Thread safety: port() may be called from any thread; destruction must not race with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/tcp/connection_limits.h"
#include "transfer/tcp/log_limiter.h"
#include "transfer/tcp/server_connection.h"
#include "transfer/tcp/server_io_loop.h"
#include "transfer/tcp/tcp_server_options.h"
#include "transfer/transport.h"

namespace ferry::transfer::tcp {

class TcpServer {
 public:
  // `host` outlives the server. Errors: AlreadyExists (port taken), InvalidArgument (bad
  // address), ResourceExhausted / Internal (threads, epoll or eventfd unavailable).
  static Result<std::unique_ptr<TcpServer>> Create(const std::string& bind_host, uint16_t port,
                                                   std::string secret, TransportHost* host,
                                                   const TcpServerOptions& options);
  ~TcpServer();

  uint16_t port() const { return port_; }

 private:
  TcpServer(UniqueFd listen_fd, UniqueFd wake_fd, uint16_t port, std::string secret,
            TransportHost* host, const TcpServerOptions& options);
  void AcceptLoop();
  // Accepts what waits (a bounded batch). Returns how long to pause accepting: zero, or a
  // back-off after running out of descriptors or kernel memory.
  std::chrono::milliseconds AcceptPending();
  // Out of descriptors: closes the spare, accepts and closes waiting connections, reopens it.
  void ShedWaitingConnections();
  // Counts and (rate-limited) logs a connection closed at accept.
  void NoteRefused(const std::string& peer, const char* why);
  ServerIoLoop* LeastLoadedLoop();

  const UniqueFd listen_fd_;
  const UniqueFd wake_fd_;  // eventfd: written once to stop AcceptLoop
  const uint16_t port_;
  ServerContext context_;
  ConnectionLimits limits_;
  LogLimiter accept_log_{std::chrono::seconds(1)};  // over-cap and out-of-fd messages
  UniqueFd spare_fd_;                               // accept thread only; /dev/null
  std::atomic<bool> stopping_{false};
  // Declared after context_ and limits_, which they use: destroyed (stopped) before them.
  std::vector<std::unique_ptr<ServerIoLoop>> loops_;
  std::thread accept_thread_;  // started last in Create, joined first in ~TcpServer
};

}  // namespace ferry::transfer::tcp
