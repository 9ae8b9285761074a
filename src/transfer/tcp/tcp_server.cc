#include "transfer/tcp/tcp_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.h"
#include "transfer/tcp/net.h"
#include "transfer/tcp/wire.h"

namespace ferry::transfer::tcp {
namespace {

// A frame that started arriving must finish within this time (slowloris guard).
constexpr auto kFrameTimeout = std::chrono::seconds(60);
// Payloads of refused WRITEs up to this size are drained so the connection stays usable;
// larger ones close the connection.
constexpr uint64_t kMaxDrain = 64ull << 20;

Status SendReply(int fd, uint64_t id, const Status& status, uint64_t addr = 0) {
  FrameHeader h;
  h.type = FrameType::kReply;
  h.request_id = id;
  h.remote_addr = addr;
  h.status = static_cast<int32_t>(status.code());
  const std::string& text = status.message();
  h.length = status.ok() ? 0 : text.size();
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  iovec iov[2] = {{buf, sizeof(buf)}, {const_cast<char*>(text.data()), h.length}};
  return SendAllV(fd, iov, 2, Deadline::In(kFrameTimeout));
}

Status Drain(int fd, uint64_t len, Deadline deadline) {
  std::vector<char> sink(len < (256u << 10) ? len : (256u << 10));
  while (len > 0) {
    size_t take = len < sink.size() ? len : sink.size();
    FERRY_RETURN_IF_ERROR(RecvAll(fd, sink.data(), take, deadline));
    len -= take;
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<TcpServer>> TcpServer::Create(const std::string& bind_host, uint16_t port,
                                                     std::string secret, TransportHost* host) {
  uint16_t bound = 0;
  FERRY_ASSIGN_OR_RETURN(UniqueFd fd, ListenTcp(bind_host, port, &bound));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd");
  std::unique_ptr<TcpServer> server(
      new TcpServer(std::move(fd), std::move(wake), bound, std::move(secret), host));
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

TcpServer::TcpServer(UniqueFd listen_fd, UniqueFd wake_fd, uint16_t port, std::string secret,
                     TransportHost* host)
    : listen_fd_(std::move(listen_fd)),
      wake_fd_(std::move(wake_fd)),
      port_(port),
      secret_(std::move(secret)),
      host_(host) {}

TcpServer::~TcpServer() {
  stopping_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_.get(), &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : connections_) ::shutdown(c->fd.get(), SHUT_RDWR);
    conns.swap(connections_);
  }
  for (auto& c : conns) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void TcpServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, 1000);
    if (r < 0 && errno != EINTR) {
      FERRY_LOG_ERROR("tcp server: poll failed: {}", std::strerror(errno));
      return;
    }
    if (stopping_.load()) return;
    if (r <= 0 || !(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    auto conn = std::make_unique<Connection>();
    conn->fd.Reset(fd);
    if (!TuneSocket(fd).ok() || !MakeBlocking(fd, 1000).ok()) continue;
    std::lock_guard<std::mutex> lock(mu_);
    ReapFinishedLocked();
    Connection* raw = conn.get();
    connections_.push_back(std::move(conn));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

void TcpServer::ReapFinishedLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished.load()) {
      (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void TcpServer::Serve(Connection* conn) {
  bool greeted = false;
  while (!stopping_.load() && HandleFrame(conn->fd.get(), &greeted)) {
  }
  // Close now so the peer sees EOF at once; the fd object stays owned by `conn`.
  ::shutdown(conn->fd.get(), SHUT_RDWR);
  conn->finished.store(true);
}

bool TcpServer::HandleFrame(int fd, bool* greeted) {
  char buf[kFrameHeaderSize];
  // Wait for the next frame without limit: shutdown() in ~TcpServer ends the wait.
  ssize_t got = 0;
  while (true) {
    got = ::recv(fd, buf, sizeof(buf), MSG_WAITALL);
    if (got > 0) {
      NoteWireRecv();
      break;
    }
    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
    if (stopping_.load()) return false;
  }
  Deadline deadline = Deadline::In(kFrameTimeout);
  if (Status s = RecvAll(fd, buf + got, sizeof(buf) - static_cast<size_t>(got), deadline);
      !s.ok()) {
    FERRY_LOG_WARN("tcp server: closing connection: truncated frame header ({})", s.ToString());
    host_->CountRejected();
    return false;
  }
  Result<FrameHeader> parsed = DecodeFrameHeader(buf);
  if (!parsed.ok()) {
    FERRY_LOG_WARN("tcp server: closing connection: {}", parsed.status().message());
    host_->CountRejected();
    return false;
  }
  const FrameHeader& h = *parsed;
  if (!*greeted && h.type != FrameType::kHello) {
    FERRY_LOG_WARN("tcp server: closing connection: {} before HELLO", FrameTypeName(h.type));
    host_->CountRejected();
    return false;
  }
  switch (h.type) {
    case FrameType::kHello: {
      std::string secret(h.length, '\0');
      if (!RecvAll(fd, secret.data(), secret.size(), deadline).ok()) return false;
      if (!SecretsEqual(secret, secret_)) {
        FERRY_LOG_WARN("tcp server: refusing connection: secret mismatch");
        host_->CountRejected();
        SendReply(fd, h.request_id,
                  PermissionDeniedError("connection refused: secret mismatch; set the same "
                                        "secret on both engines"))
            .IgnoreError();
        return false;
      }
      *greeted = true;
      return SendReply(fd, h.request_id, OkStatus()).ok();
    }
    case FrameType::kGetDescriptor: {
      std::string json = host_->LocalDescriptor().ToJson();
      FrameHeader r;
      r.type = FrameType::kReply;
      r.request_id = h.request_id;
      r.length = json.size();
      char out[kFrameHeaderSize];
      EncodeFrameHeader(r, out);
      iovec iov[2] = {{out, sizeof(out)}, {json.data(), json.size()}};
      return SendAllV(fd, iov, 2, deadline).ok();
    }
    case FrameType::kNotify: {
      std::string payload(h.length, '\0');
      if (!RecvAll(fd, payload.data(), payload.size(), deadline).ok()) return false;
      Notification n{payload.substr(0, h.aux), payload.substr(h.aux)};
      host_->DeliverNotification(std::move(n));
      return SendReply(fd, h.request_id, OkStatus()).ok();
    }
    case FrameType::kWrite: {
      Status range = host_->CheckInboundRange(h.remote_addr, h.length);
      if (!range.ok()) {
        host_->CountRejected();
        FERRY_LOG_DEBUG("tcp server: refused WRITE: {}", range.ToString());
        if (h.length > kMaxDrain) {
          SendReply(fd, h.request_id, range).IgnoreError();
          return false;
        }
        if (!Drain(fd, h.length, deadline).ok()) return false;
        return SendReply(fd, h.request_id, range).ok();
      }
      // Straight into the registered buffer: no staging copy.
      void* dst = reinterpret_cast<void*>(static_cast<uintptr_t>(h.remote_addr));
      if (Status s = RecvAll(fd, dst, h.length, deadline); !s.ok()) {
        FERRY_LOG_DEBUG("tcp server: WRITE payload cut short: {}", s.ToString());
        return false;
      }
      host_->CountInbound(TransferOp::kWrite, h.length);
      return SendReply(fd, h.request_id, OkStatus(), h.remote_addr).ok();
    }
    case FrameType::kRead: {
      Status range = host_->CheckInboundRange(h.remote_addr, h.length);
      if (!range.ok()) {
        host_->CountRejected();
        return SendReply(fd, h.request_id, range).ok();
      }
      FrameHeader r;
      r.type = FrameType::kReply;
      r.request_id = h.request_id;
      r.remote_addr = h.remote_addr;
      r.length = h.length;
      r.aux = 1;
      char out[kFrameHeaderSize];
      EncodeFrameHeader(r, out);
      iovec iov[2] = {{out, sizeof(out)},
                      {reinterpret_cast<void*>(static_cast<uintptr_t>(h.remote_addr)), h.length}};
      if (!SendAllV(fd, iov, 2, Deadline::In(kFrameTimeout)).ok()) return false;
      host_->CountInbound(TransferOp::kRead, h.length);
      return true;
    }
    case FrameType::kReply:
      FERRY_LOG_WARN("tcp server: closing connection: unexpected REPLY frame");
      host_->CountRejected();
      return false;
  }
  return false;
}

}  // namespace ferry::transfer::tcp
