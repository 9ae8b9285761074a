#include "transfer/tcp/tcp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "common/log.h"
#include "transfer/tcp/net.h"

namespace ferry::transfer::tcp {
namespace {

// Connections accepted per wake-up before the accept thread polls again.
constexpr int kAcceptBatch = 64;
// Pause after running out of descriptors or memory (keeps the thread from spinning).
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);

UniqueFd OpenSpare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

// "ip" and "ip:port" of an accepted peer.
void PeerName(const sockaddr_storage& ss, std::string* ip, std::string* peer) {
  char text[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
    *ip = text;
    *peer = *ip + ":" + std::to_string(port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    port = ntohs(a->sin6_port);
    *ip = text;
    *peer = "[" + *ip + "]:" + std::to_string(port);
  } else {
    *ip = text;
    *peer = text;
  }
}

}  // namespace

Result<std::unique_ptr<TcpServer>> TcpServer::Create(const std::string& bind_host, uint16_t port,
                                                     std::string secret, TransportHost* host,
                                                     const TcpServerOptions& options) {
  if (options.io_threads < 1 || options.io_threads > 16) {
    return InvalidArgumentError("tcp_server_threads must be in 1..16");
  }
  uint16_t bound = 0;
  FERRY_ASSIGN_OR_RETURN(UniqueFd fd, ListenTcp(bind_host, port, &bound));
  // Accepted sockets come back non-blocking; the accept thread never blocks in accept.
  int flags = ::fcntl(fd.get(), F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoToStatus(errno, "fcntl(O_NONBLOCK) on the listening socket");
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd");
  std::unique_ptr<TcpServer> server(
      new TcpServer(std::move(fd), std::move(wake), bound, std::move(secret), host, options));
  for (int i = 0; i < options.io_threads; ++i) {
    FERRY_ASSIGN_OR_RETURN(auto loop, ServerIoLoop::Start(&server->context_, &server->limits_));
    server->loops_.push_back(std::move(loop));
  }
  try {
    server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  } catch (const std::system_error& e) {
    return ResourceExhaustedError(std::string("cannot start the tcp accept thread: ") + e.what());
  }
  return server;
}

TcpServer::TcpServer(UniqueFd listen_fd, UniqueFd wake_fd, uint16_t port, std::string secret,
                     TransportHost* host, const TcpServerOptions& options)
    : listen_fd_(std::move(listen_fd)),
      wake_fd_(std::move(wake_fd)),
      port_(port),
      limits_(options.max_connections, options.max_connections_per_peer),
      spare_fd_(OpenSpare()) {
  context_.options = options;
  context_.secret = std::move(secret);
  context_.host = host;
}

TcpServer::~TcpServer() {
  stopping_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_.get(), &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  loops_.clear();  // each stops, closes its connections and joins its thread
}

void TcpServer::AcceptLoop() {
  std::chrono::milliseconds pause{0};
  while (!stopping_.load()) {
    pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {listen_fd_.get(), POLLIN, 0}};
    if (pause.count() > 0) {
      // Backing off: only the stop signal is watched, for the length of the pause.
      ::poll(fds, 1, static_cast<int>(pause.count()));
      pause = std::chrono::milliseconds(0);
      continue;
    }
    int r = ::poll(fds, 2, -1);
    if (stopping_.load()) return;
    if (r < 0) {
      if (errno != EINTR) {
        FERRY_LOG_ERROR("tcp server: poll failed: {}", std::strerror(errno));
        pause = kAcceptBackoff;
      }
      continue;
    }
    if (fds[1].revents & POLLIN) pause = AcceptPending();
  }
}

std::chrono::milliseconds TcpServer::AcceptPending() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return std::chrono::milliseconds(0);
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EMFILE || err == ENFILE) {
        ShedWaitingConnections();
        return kAcceptBackoff;
      }
      // ENOBUFS / ENOMEM / EPERM (firewall) and the like: wait and try again.
      uint64_t held_back = 0;
      if (accept_log_.Allow(&held_back)) {
        FERRY_LOG_WARN("tcp server: accept failed: {}; retrying shortly", std::strerror(err));
      }
      return kAcceptBackoff;
    }
    UniqueFd conn(fd);
    std::string ip, peer;
    PeerName(ss, &ip, &peer);
    switch (limits_.TryAdmit(ip)) {
      case ConnectionLimits::Admission::kTooManyInAll:
        NoteRefused(peer, "tcp_max_connections reached");
        continue;
      case ConnectionLimits::Admission::kTooManyFromPeer:
        NoteRefused(peer, "tcp_max_connections_per_peer reached for its address");
        continue;
      case ConnectionLimits::Admission::kAdmitted:
        break;
    }
    if (Status s = TuneSocket(conn.get()); !s.ok()) {
      limits_.Release(ip);
      continue;
    }
    LeastLoadedLoop()->Adopt(std::move(conn), std::move(ip), std::move(peer));
  }
  return std::chrono::milliseconds(0);
}

void TcpServer::ShedWaitingConnections() {
  int shed = 0;
  if (!spare_fd_.valid()) spare_fd_ = OpenSpare();  // an earlier reopen may have failed
  if (spare_fd_.valid()) {
    spare_fd_.Reset();
    for (int i = 0; i < kAcceptBatch; ++i) {
      int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) break;
      ::close(fd);
      context_.host->CountRejected();
      ++shed;
    }
    spare_fd_ = OpenSpare();
  }
  uint64_t held_back = 0;
  if (accept_log_.Allow(&held_back)) {
    FERRY_LOG_WARN(
        "tcp server: out of file descriptors; closed {} waiting connections and pausing "
        "accept (raise the limit with ulimit -n, or lower tcp_max_connections){}",
        shed,
        held_back > 0 ? " [" + std::to_string(held_back) + " similar messages held back]"
                      : std::string());
  }
}

void TcpServer::NoteRefused(const std::string& peer, const char* why) {
  context_.host->CountRejected();
  uint64_t held_back = 0;
  if (accept_log_.Allow(&held_back)) {
    FERRY_LOG_WARN(
        "tcp server: closed connection from {} at once: {}{}", peer, why,
        held_back > 0 ? " [" + std::to_string(held_back) + " more not logged]" : std::string());
  }
}

ServerIoLoop* TcpServer::LeastLoadedLoop() {
  ServerIoLoop* best = loops_.front().get();
  for (auto& loop : loops_) {
    if (loop->load() < best->load()) best = loop.get();
  }
  return best;
}

}  // namespace ferry::transfer::tcp
