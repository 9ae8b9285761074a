// HttpServer: Ferry's HTTP/1.1 server, with a limit on every resource and a deadline on
// every wait (docs/http_server.md).
//
//   http::HttpServerOptions options;
//   options.name = "metadata";
//   options.limits.max_body_bytes = 16 << 20;
//   FERRY_ASSIGN_OR_RETURN(auto server, http::HttpServer::Create(options));
//   server->Route("GET", "/health", [](const http::Request&, http::Response& res) {
//     res.Set(200, "ok", "text/plain");
//   });
//   FERRY_RETURN_IF_ERROR(server->Start("127.0.0.1", 0));   // 0: any free port
//   ... server->port() ...
//   server->Stop();                                         // also done by the destructor
//
// Threads: one event-loop thread accepts connections and reads whole requests (headers,
// then the body) without blocking, enforcing the header, body and idle deadlines; a
// complete request goes through a bounded queue to one of `worker_threads` handler
// threads, which runs the handler and writes the response (each write bounded by
// write_timeout), then hands the connection back to the loop for keep-alive. A slow or
// idle client therefore holds a connection slot, never a worker. Routes are exact paths;
// an unknown path is answered 404, a known path with another method 405 with Allow.
//
// Thread safety: Route() before Start(); Start() once; Stop(), port() and stats() from
// any thread. Handlers run concurrently on the worker threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "ferry/status.h"
#include "http/http_request.h"
#include "http/http_response.h"
#include "http/http_server_options.h"
#include "http/internal/client_counts.h"
#include "http/internal/counters.h"
#include "http/internal/route_table.h"
#include "http/internal/work_queue.h"

namespace ferry::http {

namespace internal {
class ConnectionLoop;
}  // namespace internal

// Counters since Start(), and the connections open now.
struct HttpServerStats {
  uint64_t accepted = 0;             // connections accepted (refused ones included)
  uint64_t refused_over_limit = 0;   // 503: max_connections or max_connections_per_client
  uint64_t accept_fd_exhausted = 0;  // accepts that failed with EMFILE/ENFILE
  uint64_t header_timeouts = 0;      // 408 after header_timeout
  uint64_t body_timeouts = 0;        // 408 after body_timeout
  uint64_t bad_requests = 0;         // 400, 417, 501, 505
  uint64_t too_large = 0;            // 413, 414, 431
  uint64_t overloaded_503 = 0;       // 503: the request queue was full
  uint64_t handler_exceptions = 0;   // 500: a handler threw
  uint64_t requests = 0;             // requests handed to a handler
  int open_connections = 0;
};

// The stats as Prometheus text: ferry_http_<counter>_total{server="<name>"} and
// ferry_http_open_connections{server="<name>"}.
std::string RenderPrometheus(const HttpServerStats& stats, const std::string& server_name);

class HttpServer {
 public:
  // Errors: InvalidArgument (a limit or the thread count is not positive).
  static Result<std::unique_ptr<HttpServer>> Create(HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes `method` on exactly `path` (no patterns; the query string is not part of it)
  // to `handler`, replacing an earlier one. Only before Start(); later calls are ignored
  // and logged.
  void Route(std::string method, std::string path, Handler handler);

  // Binds host:port (port 0: any free port; SO_REUSEADDR, never SO_REUSEPORT; backlog
  // 1024) and starts the threads. Errors: InvalidArgument (host does not resolve),
  // AlreadyExists (port in use, or the address is not local), FailedPrecondition (already
  // started), Internal (epoll/eventfd/thread creation failed).
  Status Start(const std::string& host, uint16_t port);
  // The bound port; 0 before Start().
  uint16_t port() const { return port_; }

  // Stops accepting, closes idle connections and answers queued requests 503, lets
  // running handlers finish for up to stop_grace (ChunkWriter::Write returns false from
  // the start), then shuts their sockets down and joins every thread. Returns as soon as
  // the handlers return. Idempotent. Must not be called from a handler (it joins the
  // worker threads).
  void Stop();

  HttpServerStats stats() const;

 private:
  explicit HttpServer(HttpServerOptions options);
  void WorkerMain();
  void Serve(internal::Job job);

  const HttpServerOptions options_;
  internal::RouteTable routes_;
  internal::Counters counters_;
  internal::ClientCounts client_counts_;
  internal::WorkQueue queue_;
  std::unique_ptr<internal::ConnectionLoop> loop_;
  std::thread loop_thread_;
  std::vector<std::thread> workers_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  uint16_t port_ = 0;

  Mutex stop_mu_;  // serialises Stop()
  Mutex mu_;
  CondVar idle_cv_;                                           // signalled when active_fds_ empties
  std::unordered_set<int> active_fds_ FERRY_GUARDED_BY(mu_);  // sockets of running handlers
};

}  // namespace ferry::http
