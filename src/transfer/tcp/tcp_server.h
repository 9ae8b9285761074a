// TcpServer: the target side of the tcp transport and the P2P handshake.
//
// Listens on the address asked for (never widened to 0.0.0.0), runs one thread per
// accepted connection, and answers HELLO / GET_DESCRIPTOR / NOTIFY / WRITE / READ frames
// (see wire.h). WRITE payloads are received straight into the target memory after
// TransportHost::CheckInboundRange accepted the range; READ data is sent straight from it.
// A bad range is answered with an error (payload drained) and counted; a malformed frame
// or a wrong secret closes that connection only; other connections keep being served.
//
//   FERRY_ASSIGN_OR_RETURN(auto server, TcpServer::Create("127.0.0.1", 0, secret, host));
//   uint16_t port = server->port();
//   server.reset();  // stops accepting, closes connections, joins every thread
//
// Thread safety: port() may be called from any thread; destruction must not race with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/transport.h"

namespace ferry::transfer::tcp {

class TcpServer {
 public:
  // `host` outlives the server. Errors: AlreadyExists (port taken), InvalidArgument.
  static Result<std::unique_ptr<TcpServer>> Create(const std::string& bind_host, uint16_t port,
                                                   std::string secret, TransportHost* host);
  ~TcpServer();

  uint16_t port() const { return port_; }

 private:
  struct Connection {
    UniqueFd fd;
    std::thread thread;
    std::atomic<bool> finished{false};
  };

  TcpServer(UniqueFd listen_fd, UniqueFd wake_fd, uint16_t port, std::string secret,
            TransportHost* host);
  void AcceptLoop();
  void Serve(Connection* conn);
  // Handles one frame; returns false when the connection must be closed.
  bool HandleFrame(int fd, bool* greeted);
  // Joins connection threads that have ended. REQUIRES(mu_).
  void ReapFinishedLocked();

  const UniqueFd listen_fd_;
  const UniqueFd wake_fd_;  // eventfd: written once to stop AcceptLoop
  const uint16_t port_;
  const std::string secret_;
  TransportHost* const host_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_;  // GUARDED_BY(mu_)
  std::thread accept_thread_;  // started last in Create, joined first in ~TcpServer
};

}  // namespace ferry::transfer::tcp
