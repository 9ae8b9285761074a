// Test helpers for the metadata suites: free ports, a black-hole listener, a scripted
// HTTP server, and a real etcd child process.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace ferry::metadata::testing {

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed). Nothing
// listens on it, so connecting is refused.
uint16_t FreePort();

// A socket listening on 127.0.0.1 that never accepts or answers: the kernel completes
// the TCP handshake and then every request waits forever.
class BlackHoleListener {
 public:
  BlackHoleListener();
  uint16_t port() const { return port_; }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

// An httplib::Server on 127.0.0.1:<free port> with routes set by the caller before
// Start(). Owns its listener thread; the destructor stops and joins it.
class ScriptedHttpServer {
 public:
  ScriptedHttpServer();
  ~ScriptedHttpServer();
  httplib::Server& server() { return *server_; }
  // Binds and waits (up to 5 s) until serving. Returns false on failure.
  bool Start();
  uint16_t port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  uint16_t port_ = 0;
};

// A single-member etcd started from /usr/bin/etcd (or $FERRY_ETCD_BINARY) on 127.0.0.1
// with free client and peer ports and a temporary data dir. The destructor kills it and
// removes the dir.
class EtcdProcess {
 public:
  // Starts etcd and waits until GET /health answers {"health":"true"}. Errors:
  // FailedPrecondition when the binary is missing (names scripts/install_deps.sh);
  // Unavailable with etcd's log when it exits or is not healthy before `deadline`.
  static Result<std::unique_ptr<EtcdProcess>> Start(Deadline deadline);
  ~EtcdProcess();

  // SIGKILLs etcd and reaps it (bounded by 5 s). Idempotent.
  void Kill();
  // Kills etcd and starts it again on the same ports and data dir (keys and revisions
  // survive), waiting until it is healthy. Errors: as Start.
  Status Restart(Deadline deadline);
  uint16_t client_port() const { return client_port_; }
  // "127.0.0.1:<client port>".
  std::string endpoint() const;
  // etcd's stdout and stderr so far.
  std::string Log() const;

 private:
  EtcdProcess() = default;
  // Picks the data dir and ports, then Exec().
  Status Launch(const std::string& binary);
  // Forks and execs `binary_` with the chosen dir and ports.
  Status Exec();
  Status WaitHealthy(Deadline deadline);

  pid_t pid_ = -1;
  std::string binary_;
  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
};

// EtcdProcess::Start with 30 s to start; on failure, a test failure (with the reason)
// and nullptr.
std::unique_ptr<EtcdProcess> StartEtcdOrFail();

}  // namespace ferry::metadata::testing
