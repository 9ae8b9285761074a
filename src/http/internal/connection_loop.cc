#include "http/internal/connection_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/mutex.h"
#include "http/internal/response_writer.h"
#include "http/internal/socket_io.h"

namespace ferry::http::internal {
namespace {

constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kWakeTag = ~uint64_t{0} - 1;
constexpr auto kTick = std::chrono::milliseconds(100);
// Closing: how long, and how many bytes, the loop reads and drops after an error
// response, so that the client reads the response instead of a reset.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kMaxLingerBytes = 16 << 20;
constexpr int kAcceptBatch = 128;
constexpr int kReadRounds = 16;  // reads per readiness event, for fairness
constexpr size_t kReadSize = 64 << 10;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

uint64_t Tag(const Connection& c) {
  return (static_cast<uint64_t>(c.serial) << 32) | static_cast<uint32_t>(c.fd.get());
}

void PeerAddress(const sockaddr_storage& addr, std::string* ip, uint16_t* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    *port = ntohs(a->sin6_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    *port = ntohs(a->sin_port);
  }
  *ip = text;
}

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

Connection::~Connection() {
  fd.Reset();
  if (counts != nullptr) counts->Remove(remote_addr);
}

Result<std::unique_ptr<ConnectionLoop>> ConnectionLoop::Create(UniqueFd listen_fd, Shared shared) {
  std::unique_ptr<ConnectionLoop> loop(new ConnectionLoop(std::move(listen_fd), shared));
  FERRY_RETURN_IF_ERROR(loop->Init());
  return loop;
}

Status ConnectionLoop::Init() {
  epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return ErrnoToStatus(errno, "epoll_create1").WithContext("http server");
  wake_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) return ErrnoToStatus(errno, "eventfd").WithContext("http server");
  spare_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_.get(), &ev) != 0) {
    return ErrnoToStatus(errno, "epoll_ctl(listen)").WithContext("http server");
  }
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return ErrnoToStatus(errno, "epoll_ctl(eventfd)").WithContext("http server");
  }
  read_buf_.resize(kReadSize);
  return OkStatus();
}

ConnectionLoop::~ConnectionLoop() = default;

void ConnectionLoop::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

void ConnectionLoop::RequestStop() {
  stop_ = true;
  Wake();
}

void ConnectionLoop::Return(std::unique_ptr<Connection> conn, bool keep_alive) {
  {
    MutexLock lock(&mu_);
    if (!closed_) {
      returned_.emplace_back(std::move(conn), keep_alive);
      Wake();
      return;
    }
  }
  conn.reset();  // the loop has stopped: close here
}

void ConnectionLoop::Run() {
  epoll_event events[256];
  SteadyClock::time_point last_sweep = SteadyClock::now();
  while (!stop_.load()) {
    const int n = ::epoll_wait(epoll_.get(), events, 256, static_cast<int>(kTick.count()));
    if (n < 0 && errno != EINTR) {
      FERRY_LOG_ERROR("{}: epoll_wait: {}", s_.options->name, std::strerror(errno));
      break;
    }
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        AcceptBatch();
      } else if (tag == kWakeTag) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &count, sizeof(count));
        woken = true;
      } else {
        auto it = conns_.find(static_cast<int>(tag & 0xffffffffu));
        if (it != conns_.end() && it->second->serial == static_cast<uint32_t>(tag >> 32)) {
          OnEvent(it->second.get(), events[i].events);
        }
      }
    }
    if (woken) TakeReturned();
    if (SteadyClock::now() - last_sweep >= kTick) {
      last_sweep = SteadyClock::now();
      Sweep();
    }
  }
  listen_.Reset();
  std::vector<std::pair<std::unique_ptr<Connection>, bool>> returned;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    returned.swap(returned_);
  }
  returned.clear();
  conns_.clear();
}

void ConnectionLoop::AcceptBatch() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE) {
        if (!RefuseWithSpareFd()) return PauseAccepting();
        continue;
      }
      FERRY_LOG_WARN("{}: accept: {}; pausing accepts for 100 ms", s_.options->name,
                     std::strerror(errno));
      return PauseAccepting();
    }
    if (fd_exhausted_) {
      FERRY_LOG_WARN(
          "{}: accepting again after refusing {} connections for lack of file "
          "descriptors",
          s_.options->name, burst_refused_);
      fd_exhausted_ = false;
    }
    std::string ip;
    uint16_t port = 0;
    PeerAddress(addr, &ip, &port);
    OnAccepted(UniqueFd(fd), ip, port);
  }
}

bool ConnectionLoop::RefuseWithSpareFd() {
  s_.counters->accept_fd_exhausted++;
  if (!fd_exhausted_) {
    fd_exhausted_ = true;
    burst_refused_ = 0;
    FERRY_LOG_WARN(
        "{}: out of file descriptors: refusing new connections with 503 (raise "
        "`ulimit -n` or lower max_connections)",
        s_.options->name);
  }
  if (!spare_.valid()) return false;
  spare_.Reset();
  const int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  const int accept_errno = errno;
  if (fd >= 0) {
    ++burst_refused_;
    Refuse(UniqueFd(fd), "server out of file descriptors; retry later");
  }
  spare_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fd >= 0 || accept_errno == EAGAIN || accept_errno == EWOULDBLOCK;
}

void ConnectionLoop::PauseAccepting() {
  if (!accepting_) return;
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listen_.get(), &ev);
  accepting_ = false;
  resume_accept_ = SteadyClock::now() + kTick;
}

void ConnectionLoop::Refuse(UniqueFd fd, std::string_view message) {
  const std::string bytes = ErrorResponse(*s_.options, 503, message, {});
  SendSome(fd.get(), bytes);
  DiscardReadable(fd.get(), 64 << 10);
}

void ConnectionLoop::OnAccepted(UniqueFd fd, const std::string& ip, uint16_t port) {
  s_.counters->accepted++;
  std::string why;
  if (!s_.client_counts->TryAdd(ip, &why)) {
    s_.counters->refused_over_limit++;
    return Refuse(std::move(fd), why);
  }
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (++next_serial_ == 0) next_serial_ = 1;
  auto c = std::make_unique<Connection>(std::move(fd), next_serial_, ip, port, s_.options->limits,
                                        s_.client_counts);
  c->phase = ConnectionPhase::kHeaders;
  c->deadline = SteadyClock::now() + s_.options->limits.header_timeout;
  if (!Watch(c.get(), EPOLL_CTL_ADD, false)) return;
  const int key = c->fd.get();
  conns_[key] = std::move(c);
}

bool ConnectionLoop::Watch(Connection* c, int op, bool output) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (output ? EPOLLOUT : 0u);
  ev.data.u64 = Tag(*c);
  c->watching_output = output;
  return ::epoll_ctl(epoll_.get(), op, c->fd.get(), &ev) == 0;
}

void ConnectionLoop::OnEvent(Connection* c, uint32_t events) {
  if (c->phase == ConnectionPhase::kClosing) {
    if ((events & EPOLLOUT) != 0 && !c->out.empty()) return FlushOut(c);
    return Linger(c);
  }
  ReadAndProcess(c);
}

void ConnectionLoop::ReadAndProcess(Connection* c) {
  for (int round = 0; round < kReadRounds; ++round) {
    const ssize_t n = ::recv(c->fd.get(), read_buf_.data(), read_buf_.size(), 0);
    if (n > 0) {
      c->in.append(read_buf_.data(), static_cast<size_t>(n));
      if (!ProcessInput(c)) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return Close(c);  // EOF before a whole request, or a reset
  }
}

bool ConnectionLoop::ProcessInput(Connection* c) {
  const HttpLimits& limits = s_.options->limits;
  if (c->phase == ConnectionPhase::kIdle && !c->in.empty()) {
    c->phase = ConnectionPhase::kHeaders;
    c->deadline = SteadyClock::now() + limits.header_timeout;
  }
  while (true) {
    switch (c->parser.Parse(&c->in)) {
      case ParseStep::kNeedMore:
        return true;
      case ParseStep::kError: {
        const int status = c->parser.error_status();
        if (status == 413 || status == 414 || status == 431) {
          s_.counters->too_large++;
        } else {
          s_.counters->bad_requests++;
        }
        SendErrorAndClose(c, status, c->parser.error_message());
        return false;
      }
      case ParseStep::kHeadersDone: {
        const Request& req = c->parser.request();
        RouteMatch route = s_.routes->Find(req.method, req.path);
        if (route.handler == nullptr && route.allow.empty()) {
          SendErrorAndClose(c, 404, "no route for " + req.method + " " + req.path);
          return false;
        }
        if (route.handler == nullptr) {
          SendErrorAndClose(c, 405,
                            "method " + req.method + " is not allowed for " + req.path +
                                " (allowed: " + route.allow + ")",
                            {{"Allow", route.allow}});
          return false;
        }
        c->handler = route.handler;
        if (c->parser.HasBody()) {
          c->phase = ConnectionPhase::kBody;
          c->deadline = SteadyClock::now() + limits.body_timeout;
          if (c->parser.ExpectsContinue() &&
              SendSome(c->fd.get(), kContinue) != static_cast<long>(kContinue.size())) {
            Close(c);
            return false;
          }
        }
        break;
      }
      case ParseStep::kComplete:
        Dispatch(c);
        return false;
    }
  }
}

void ConnectionLoop::Dispatch(Connection* c) {
  const int key = c->fd.get();
  bool keep_alive = c->parser.ClientWantsKeepAlive();
  Job job;
  job.request = c->parser.TakeRequest();
  job.request.remote_addr = c->remote_addr;
  job.request.remote_port = c->remote_port;
  job.request.client_fd_ = key;
  job.handler = c->handler;
  c->handler = nullptr;
  c->requests++;
  job.keep_alive =
      keep_alive && c->requests < s_.options->limits.max_requests_per_connection && !stop_;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, key, nullptr);
  auto it = conns_.find(key);
  job.conn = std::move(it->second);
  if (s_.queue->TryPush(job)) {
    conns_.erase(it);
    return;
  }
  it->second = std::move(job.conn);
  Watch(c, EPOLL_CTL_ADD, false);
  s_.counters->overloaded_503++;
  SendErrorAndClose(c, 503,
                    "server overloaded: " + std::to_string(s_.options->limits.max_queued_requests) +
                        " requests are already waiting; retry later");
}

void ConnectionLoop::SendErrorAndClose(Connection* c, int status, std::string_view message,
                                       std::vector<std::pair<std::string, std::string>> headers) {
  c->out = ErrorResponse(*s_.options, status, message, headers);
  StartClosing(c);
}

void ConnectionLoop::StartClosing(Connection* c) {
  c->phase = ConnectionPhase::kClosing;
  c->deadline = SteadyClock::now() + kLingerTime;
  c->in.clear();
  c->in.shrink_to_fit();
  FlushOut(c);
}

void ConnectionLoop::FlushOut(Connection* c) {
  while (!c->out.empty()) {
    const long n = SendSome(c->fd.get(), c->out);
    if (n < 0) return Close(c);
    if (n == 0) {
      if (!c->watching_output && !Watch(c, EPOLL_CTL_MOD, true)) return Close(c);
      return;
    }
    c->out.erase(0, static_cast<size_t>(n));
  }
  ::shutdown(c->fd.get(), SHUT_WR);
  if (c->watching_output) Watch(c, EPOLL_CTL_MOD, false);
  Linger(c);
}

void ConnectionLoop::Linger(Connection* c) {
  while (true) {
    const ssize_t n = ::recv(c->fd.get(), read_buf_.data(), read_buf_.size(), 0);
    if (n > 0) {
      c->discarded += static_cast<size_t>(n);
      if (c->discarded > kMaxLingerBytes) return Close(c);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return Close(c);  // EOF or reset: the client is done
  }
}

void ConnectionLoop::Close(Connection* c) { conns_.erase(c->fd.get()); }

void ConnectionLoop::TakeReturned() {
  std::vector<std::pair<std::unique_ptr<Connection>, bool>> returned;
  {
    MutexLock lock(&mu_);
    returned.swap(returned_);
  }
  const HttpLimits& limits = s_.options->limits;
  for (auto& [owned, keep_alive] : returned) {
    Connection* c = owned.get();
    const int key = c->fd.get();
    if (!Watch(c, EPOLL_CTL_ADD, false)) continue;  // `owned` closes it
    conns_[key] = std::move(owned);
    if (!keep_alive || stop_) {
      c->out.clear();
      StartClosing(c);
      continue;
    }
    const bool pipelined = !c->in.empty();
    c->phase = pipelined ? ConnectionPhase::kHeaders : ConnectionPhase::kIdle;
    c->deadline = SteadyClock::now() + (pipelined ? limits.header_timeout : limits.idle_timeout);
    if (pipelined) ProcessInput(c);
  }
}

void ConnectionLoop::Sweep() {
  const SteadyClock::time_point now = SteadyClock::now();
  if (!accepting_ && now >= resume_accept_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listen_.get(), &ev);
    accepting_ = true;
  }
  if (!spare_.valid()) spare_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::vector<Connection*> expired;
  for (auto& [fd, c] : conns_) {
    if (now >= c->deadline) expired.push_back(c.get());
  }
  const HttpLimits& limits = s_.options->limits;
  for (Connection* c : expired) {
    switch (c->phase) {
      case ConnectionPhase::kIdle:
      case ConnectionPhase::kClosing:
        Close(c);
        break;
      case ConnectionPhase::kHeaders:
        s_.counters->header_timeouts++;
        SendErrorAndClose(c, 408,
                          "request headers not received within " + Millis(limits.header_timeout));
        break;
      case ConnectionPhase::kBody:
        s_.counters->body_timeouts++;
        SendErrorAndClose(c, 408,
                          "request body not received within " + Millis(limits.body_timeout));
        break;
    }
  }
}

}  // namespace ferry::http::internal
