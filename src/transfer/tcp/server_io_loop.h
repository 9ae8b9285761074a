// ServerIoLoop: one of the tcp server's I/O threads. It owns its share of the accepted
// connections (ServerConnection) and drives them from one level-triggered epoll set; every
// 100 ms while it has connections it closes those whose deadline passed (HELLO, frame,
// idle; see TcpServerOptions).
//
//   FERRY_ASSIGN_OR_RETURN(auto loop, ServerIoLoop::Start(&context, &limits));
//   loop->Adopt(std::move(fd), "10.0.0.7", "10.0.0.7:41234");   // from the accept thread
//   loop.reset();   // stops, closes its connections, joins the thread
//
// Every adopted connection was admitted by `limits`; the loop releases it there when the
// connection closes. Thread safety: Adopt and load may be called from any thread; the
// connections themselves are touched by the loop thread only. Nothing throws out of the
// thread, and it starts no threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/tcp/connection_limits.h"
#include "transfer/tcp/server_connection.h"

namespace ferry::transfer::tcp {

class ServerIoLoop {
 public:
  // `context` and `limits` outlive the loop. Errors: Internal (epoll / eventfd could not be
  // created), ResourceExhausted (no thread could be started).
  static Result<std::unique_ptr<ServerIoLoop>> Start(ServerContext* context,
                                                     ConnectionLimits* limits);
  ~ServerIoLoop();

  // Hands over an accepted, tuned, non-blocking socket admitted by `limits` for `ip`.
  void Adopt(UniqueFd fd, std::string ip, std::string peer);
  // Connections adopted and not yet closed (for spreading new ones over the loops).
  int load() const { return load_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    UniqueFd fd;
    std::string ip;
    std::string peer;
  };
  struct Slot {
    std::unique_ptr<ServerConnection> conn;
    uint32_t events = 0;  // registered with epoll
    std::list<Slot>::iterator self;
  };

  ServerIoLoop(ServerContext* context, ConnectionLimits* limits, UniqueFd epoll_fd,
               UniqueFd wake_fd);
  void Run();
  void AdoptPending(SteadyClock::time_point now);
  void Handle(Slot* slot, uint32_t events, SteadyClock::time_point now);
  void Close(Slot* slot);
  void Sweep(SteadyClock::time_point now);

  ServerContext* const context_;
  ConnectionLimits* const limits_;
  const UniqueFd epoll_fd_;
  const UniqueFd wake_fd_;  // eventfd: Adopt and the destructor wake the loop
  std::atomic<bool> stopping_{false};
  std::atomic<int> load_{0};

  Mutex mu_;
  std::vector<Pending> pending_ FERRY_GUARDED_BY(mu_);

  // Loop thread only.
  std::list<Slot> slots_;
  std::vector<char> scratch_;  // drains refused WRITE payloads

  std::thread thread_;  // started last in Start, joined first in ~ServerIoLoop
};

}  // namespace ferry::transfer::tcp
