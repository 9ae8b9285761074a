// ConnectionLoop: HttpServer's event-loop thread. One epoll set over the listening socket,
// every connection the loop owns and an eventfd for wake-ups. It accepts (within
// max_connections, max_connections_per_client and the fd limit), reads and parses
// requests, enforces header_timeout, body_timeout and idle_timeout (checked every 100 ms),
// answers the server's own errors (400 ... 505, 503 when full) without blocking and then
// closes gracefully (flush, shut down the write side, discard input for up to a second),
// and hands complete requests to the WorkQueue. A worker hands the connection back with
// Return() after the response; buffered bytes of a pipelined next request are kept.
//
//   auto loop = ConnectionLoop::Create(std::move(listen_fd), shared);   // owned by HttpServer
//   std::thread t([&] { (*loop)->Run(); });
//   ...
//   (*loop)->RequestStop(); t.join();   // closes the listener and every connection it owns
//
// Thread safety: Run() on one thread; RequestStop() and Return() from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "http/http_server_options.h"
#include "http/internal/client_counts.h"
#include "http/internal/connection.h"
#include "http/internal/counters.h"
#include "http/internal/route_table.h"
#include "http/internal/work_queue.h"

namespace ferry::http::internal {

class ConnectionLoop {
 public:
  // What the loop shares with HttpServer; every pointer outlives the loop.
  struct Shared {
    const HttpServerOptions* options = nullptr;
    const RouteTable* routes = nullptr;
    WorkQueue* queue = nullptr;
    Counters* counters = nullptr;
    ClientCounts* client_counts = nullptr;
  };

  // `listen_fd`: a bound, listening, non-blocking socket. Errors: Internal (epoll or
  // eventfd could not be created; the message says why).
  static Result<std::unique_ptr<ConnectionLoop>> Create(UniqueFd listen_fd, Shared shared);
  ~ConnectionLoop();
  ConnectionLoop(const ConnectionLoop&) = delete;
  ConnectionLoop& operator=(const ConnectionLoop&) = delete;

  // The loop; returns once RequestStop() was called, after closing the listener and every
  // connection it owns. Later Return()s close their connection on the caller's thread.
  void Run();
  void RequestStop();
  // Hands a dispatched connection back after its response: kept alive when `keep_alive`,
  // else closed gracefully.
  void Return(std::unique_ptr<Connection> conn, bool keep_alive);

 private:
  ConnectionLoop(UniqueFd listen_fd, Shared shared) : listen_(std::move(listen_fd)), s_(shared) {}
  Status Init();
  void Wake();

  void AcceptBatch();
  void OnAccepted(UniqueFd fd, const std::string& ip, uint16_t port);
  bool RefuseWithSpareFd();  // false: nothing could be accepted, pause accepting
  void Refuse(UniqueFd fd, std::string_view message);
  void PauseAccepting();

  void OnEvent(Connection* c, uint32_t events);
  void ReadAndProcess(Connection* c);
  bool ProcessInput(Connection* c);  // false: the connection left the reading phases
  void Dispatch(Connection* c);
  void SendErrorAndClose(Connection* c, int status, std::string_view message,
                         std::vector<std::pair<std::string, std::string>> headers = {});
  void StartClosing(Connection* c);
  void FlushOut(Connection* c);
  void Linger(Connection* c);
  void Close(Connection* c);
  bool Watch(Connection* c, int op, bool output);
  void TakeReturned();
  void Sweep();

  UniqueFd listen_;
  const Shared s_;
  UniqueFd epoll_;
  UniqueFd wake_;   // eventfd
  UniqueFd spare_;  // /dev/null, given up to accept-and-refuse when out of fds
  std::atomic<bool> stop_{false};
  bool accepting_ = true;
  SteadyClock::time_point resume_accept_;
  bool fd_exhausted_ = false;  // in an EMFILE burst (logged once)
  uint64_t burst_refused_ = 0;
  uint32_t next_serial_ = 1;
  std::unordered_map<int, std::unique_ptr<Connection>> conns_;  // by fd; loop thread only
  std::vector<char> read_buf_;

  Mutex mu_;
  std::vector<std::pair<std::unique_ptr<Connection>, bool>> returned_ FERRY_GUARDED_BY(mu_);
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::http::internal
