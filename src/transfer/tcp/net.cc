#include "transfer/tcp/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace ferry::transfer::tcp {
namespace {

#if defined(__SANITIZE_THREAD__)
char wire_sync;
#endif

Status PollFor(int fd, short events, Deadline deadline, const char* what) {
  while (true) {
    if (deadline.Expired()) return DeadlineExceededError(std::string(what) + " timed out");
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, deadline.RemainingMsForPoll());
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "poll");
    }
    if (r == 0) continue;  // re-check deadline
    if (p.revents & POLLNVAL) return UnavailableError(std::string(what) + ": socket closed");
    return OkStatus();  // readiness or error: the next syscall reports which
  }
}

Status SocketError(int err, const char* what) {
  if (err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ECONNREFUSED ||
      err == ESHUTDOWN || err == EBADF) {
    return UnavailableError(std::string(what) + ": " + std::strerror(err) +
                            " (peer gone or connection closed)");
  }
  return ErrnoToStatus(err, what);
}

}  // namespace

void NoteWireSend() {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(&wire_sync);
#endif
}

void NoteWireRecv() {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(&wire_sync);
#endif
}

Status TuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = kSocketBufferBytes;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return OkStatus();
}

Status MakeBlocking(int fd, int timeout_ms) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    return ErrnoToStatus(errno, "fcntl(blocking)");
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return OkStatus();
}

Result<UniqueFd> ListenTcp(const std::string& host, uint16_t port, uint16_t* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return InvalidArgumentError("cannot resolve listen address '" + host +
                                "': " + ::gai_strerror(rc));
  }
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    ::freeaddrinfo(res);
    return ErrnoToStatus(errno, "socket");
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) < 0) {
    int err = errno;
    ::freeaddrinfo(res);
    if (err == EADDRINUSE) {
      return AlreadyExistsError("port " + port_text + " on " + host +
                                " is taken; pick another port or 0 for any");
    }
    return ErrnoToStatus(err, "bind " + host + ":" + port_text);
  }
  ::freeaddrinfo(res);
  if (::listen(fd.get(), 128) < 0) return ErrnoToStatus(errno, "listen");
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  *bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

Result<UniqueFd> ConnectTcp(const std::string& host, uint16_t port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return UnavailableError("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  Status last = UnavailableError("no address for " + host);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
      last = ErrnoToStatus(errno, "socket");
      continue;
    }
    if (Status s = TuneSocket(fd.get()); !s.ok()) {
      last = s;
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
      last = SocketError(errno, ("connect to " + host + ":" + port_text).c_str());
      continue;
    }
    if (Status s = PollFor(fd.get(), POLLOUT, deadline, "connect"); !s.ok()) {
      last = s;
      break;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last = SocketError(err, ("connect to " + host + ":" + port_text).c_str());
      continue;
    }
    ::freeaddrinfo(res);
    FERRY_RETURN_IF_ERROR(MakeBlocking(fd.get(), kBlockingTimeoutMs));
    return fd;
  }
  ::freeaddrinfo(res);
  return last;
}

Status SendAllV(int fd, iovec* iov, int iovcnt, Deadline deadline) {
  NoteWireSend();
  while (iovcnt > 0) {
    if (iov->iov_len == 0) {
      ++iov;
      --iovcnt;
      continue;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        FERRY_RETURN_IF_ERROR(PollFor(fd, POLLOUT, deadline, "send"));
        continue;
      }
      return SocketError(errno, "send");
    }
    size_t left = static_cast<size_t>(n);
    while (left > 0 && iovcnt > 0) {
      size_t take = left < iov->iov_len ? left : iov->iov_len;
      iov->iov_base = static_cast<char*>(iov->iov_base) + take;
      iov->iov_len -= take;
      left -= take;
      if (iov->iov_len == 0) {
        ++iov;
        --iovcnt;
      }
    }
  }
  NoteWireSend();  // after the kernel read the buffers
  return OkStatus();
}

Status SendAll(int fd, const void* data, size_t len, Deadline deadline) {
  iovec iov{const_cast<void*>(data), len};
  return SendAllV(fd, &iov, 1, deadline);
}

Status RecvAll(int fd, void* buf, size_t len, Deadline deadline) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::recv(fd, p, len, MSG_WAITALL);
    if (n > 0) {
      NoteWireRecv();
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return UnavailableError("connection closed by peer (peer gone?)");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      FERRY_RETURN_IF_ERROR(PollFor(fd, POLLIN, deadline, "receive"));
      continue;
    }
    return SocketError(errno, "recv");
  }
  return OkStatus();
}

ssize_t RecvSome(int fd, void* buf, size_t len) {
  while (true) {
    ssize_t n = ::recv(fd, buf, len, MSG_DONTWAIT);
    if (n > 0) NoteWireRecv();
    if (n >= 0 || errno != EINTR) return n;
  }
}

ssize_t RecvSomeV(int fd, iovec* iov, int iovcnt) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  while (true) {
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n > 0) NoteWireRecv();
    if (n >= 0 || errno != EINTR) return n;
  }
}

ssize_t SendSomeV(int fd, const iovec* iov, int iovcnt) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  NoteWireSend();
  while (true) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0 || errno != EINTR) {
      NoteWireSend();  // after the kernel read the buffers
      return n;
    }
  }
}

bool WaitReadable(int fd, Deadline deadline) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, deadline.RemainingMsForPoll());
  return r > 0;
}

}  // namespace ferry::transfer::tcp
