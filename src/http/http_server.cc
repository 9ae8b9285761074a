#include "http/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "common/log.h"
#include "common/mutex.h"
#include "common/unique_fd.h"
#include "http/internal/connection_loop.h"
#include "http/internal/response_writer.h"
#include "http/internal/socket_io.h"

namespace ferry::http {
namespace {

constexpr int kListenBacklog = 1024;

void NameThisThread(const std::string& name) {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

// A listening, non-blocking socket on host:port (IPv4 addresses tried first).
Result<UniqueFd> Listen(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return InvalidArgumentError("cannot resolve listen address '" + host +
                                "': " + ::gai_strerror(rc));
  }
  std::vector<addrinfo*> candidates;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) candidates.push_back(a);
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](addrinfo* a) { return a->ai_family == AF_INET; });
  int last_errno = EADDRNOTAVAIL;
  UniqueFd fd;
  for (addrinfo* a : candidates) {
    fd.Reset(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last_errno = errno;
      continue;
    }
    const int yes = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) == 0 &&
        ::listen(fd.get(), kListenBacklog) == 0) {
      break;
    }
    last_errno = errno;
    fd.Reset();
  }
  ::freeaddrinfo(found);
  if (!fd.valid()) {
    return AlreadyExistsError("cannot listen on " + host + ":" + service + ": " +
                              std::strerror(last_errno) +
                              " (port in use, or the address is not local)");
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options) {
  const HttpLimits& l = options.limits;
  if (options.worker_threads < 1 || l.max_connections < 1 || l.max_connections_per_client < 1 ||
      l.max_queued_requests < 1 || l.max_header_bytes < 64 || l.max_headers < 1 ||
      l.max_uri_bytes < 1 || l.max_requests_per_connection < 1 || l.header_timeout.count() <= 0 ||
      l.body_timeout.count() <= 0 || l.idle_timeout.count() <= 0 || l.write_timeout.count() <= 0 ||
      options.stop_grace.count() < 0) {
    return InvalidArgumentError(
        "http server '" + options.name +
        "': worker_threads, the connection, queue, header, uri and request limits and the "
        "timeouts must be positive (max_header_bytes at least 64)");
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(options)));
}

HttpServer::HttpServer(HttpServerOptions options)
    : options_(std::move(options)),
      client_counts_(options_.limits.max_connections, options_.limits.max_connections_per_client),
      queue_(static_cast<size_t>(options_.limits.max_queued_requests)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, std::string path, Handler handler) {
  if (started_.load()) {
    FERRY_LOG_ERROR("{}: Route({} {}) after Start() is ignored", options_.name, method, path);
    return;
  }
  routes_.Add(std::move(method), std::move(path), std::move(handler));
}

Status HttpServer::Start(const std::string& host, uint16_t port) {
  MutexLock lock(&stop_mu_);
  if (started_.load()) return FailedPreconditionError(options_.name + ": already started");
  FERRY_ASSIGN_OR_RETURN(UniqueFd listen_fd, Listen(host, port));
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t bound = addr.ss_family == AF_INET6
                             ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  internal::ConnectionLoop::Shared shared{&options_, &routes_, &queue_, &counters_,
                                          &client_counts_};
  FERRY_ASSIGN_OR_RETURN(loop_, internal::ConnectionLoop::Create(std::move(listen_fd), shared));
  started_ = true;
  port_ = bound;
  loop_thread_ = std::thread([this] {
    NameThisThread(options_.name + "-loop");
    loop_->Run();
  });
  workers_.reserve(static_cast<size_t>(options_.worker_threads));
  for (int i = 0; i < options_.worker_threads; ++i) {
    workers_.emplace_back([this] {
      NameThisThread(options_.name + "-worker");
      WorkerMain();
    });
  }
  return OkStatus();
}

void HttpServer::Stop() {
  MutexLock stop_lock(&stop_mu_);
  if (!started_.load() || stopping_.exchange(true)) return;
  loop_->RequestStop();
  loop_thread_.join();  // the listener and every connection the loop owned are closed
  queue_.Close();       // queued requests are answered 503 by the workers
  {
    MutexLock lock(&mu_);
    idle_cv_.WaitFor(&mu_, options_.stop_grace, [this]() FERRY_REQUIRES(mu_) {
      return active_fds_.empty() && queue_.size() == 0;
    });
    // Whatever still runs: writes fail at once and ClientGone() turns true.
    for (int fd : active_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

HttpServerStats HttpServer::stats() const {
  HttpServerStats s;
  s.accepted = counters_.accepted.load();
  s.refused_over_limit = counters_.refused_over_limit.load();
  s.accept_fd_exhausted = counters_.accept_fd_exhausted.load();
  s.header_timeouts = counters_.header_timeouts.load();
  s.body_timeouts = counters_.body_timeouts.load();
  s.bad_requests = counters_.bad_requests.load();
  s.too_large = counters_.too_large.load();
  s.overloaded_503 = counters_.overloaded_503.load();
  s.handler_exceptions = counters_.handler_exceptions.load();
  s.requests = counters_.requests.load();
  s.open_connections = client_counts_.total();
  return s;
}

void HttpServer::WorkerMain() {
  while (std::optional<internal::Job> job = queue_.Pop()) Serve(std::move(*job));
}

void HttpServer::Serve(internal::Job job) {
  const int fd = job.conn->fd.get();
  {
    MutexLock lock(&mu_);
    active_fds_.insert(fd);
  }
  internal::WriteContext ctx;
  ctx.http_minor = job.request.http_minor;
  ctx.keep_alive = job.keep_alive && !stopping_.load();
  ctx.write_timeout = options_.limits.write_timeout;
  ctx.stopping = &stopping_;
  ctx.server_name = options_.name;
  bool reusable = false;
  if (stopping_.load()) {
    const std::string bytes =
        internal::ErrorResponse(options_, 503, "server stopping; retry on another instance", {});
    std::string_view parts[] = {bytes};
    internal::SendAll(fd, parts, Deadline::In(options_.limits.write_timeout));
  } else {
    counters_.requests++;
    Response res;
    bool threw = false;
    std::string thrown;
    try {
      (*job.handler)(job.request, res);
    } catch (const std::exception& e) {
      threw = true;
      thrown = e.what();
    } catch (...) {
      threw = true;
      thrown = "a non-std exception";
    }
    if (threw) {
      FERRY_LOG_ERROR("{}: the handler of {} {} threw: {}", options_.name, job.request.method,
                      job.request.path, thrown);
      counters_.handler_exceptions++;
      constexpr std::string_view kMessage = "internal error while handling the request";
      ErrorBody body = options_.error_body ? options_.error_body(500, kMessage)
                                           : ErrorBody{std::string(kMessage) + "\n", "text/plain"};
      res = Response();
      res.Set(500, std::move(body.body), std::move(body.content_type));
    }
    reusable = internal::WriteResponse(fd, res, ctx);
  }
  {
    MutexLock lock(&mu_);
    active_fds_.erase(fd);
  }
  idle_cv_.SignalAll();
  loop_->Return(std::move(job.conn), reusable);
}

std::string RenderPrometheus(const HttpServerStats& s, const std::string& server_name) {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + "{server=\"" + server_name + "\"} " + std::to_string(v) + "\n";
  };
  metric("ferry_http_connections_accepted_total", "counter", "Connections accepted.", s.accepted);
  metric("ferry_http_connections_refused_total", "counter",
         "Connections refused (503) over max_connections or max_connections_per_client.",
         s.refused_over_limit);
  metric("ferry_http_accept_fd_exhausted_total", "counter",
         "Accepts that failed for lack of file descriptors.", s.accept_fd_exhausted);
  metric("ferry_http_timeouts_total", "counter",
         "Requests cut by the header or body deadline (408).", s.header_timeouts + s.body_timeouts);
  metric("ferry_http_bad_requests_total", "counter", "Malformed requests (400, 417, 501, 505).",
         s.bad_requests);
  metric("ferry_http_too_large_total", "counter", "Requests over a size limit (413, 414, 431).",
         s.too_large);
  metric("ferry_http_overloaded_total", "counter", "Requests refused with a full queue (503).",
         s.overloaded_503);
  metric("ferry_http_handler_exceptions_total", "counter", "Handlers that threw (500).",
         s.handler_exceptions);
  metric("ferry_http_requests_total", "counter", "Requests handed to a handler.", s.requests);
  metric("ferry_http_open_connections", "gauge", "Connections open now.",
         static_cast<uint64_t>(s.open_connections));
  return out;
}

}  // namespace ferry::http
