#include "http/internal/socket_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace ferry::http::internal {

bool SendAll(int fd, std::span<const std::string_view> parts, Deadline deadline) {
  constexpr size_t kMaxParts = 8;
  iovec iov[kMaxParts];
  size_t count = 0;
  for (std::string_view p : parts) {
    if (p.empty()) continue;
    if (count == kMaxParts) return false;  // callers pass a few parts; never reached
    iov[count++] = {const_cast<char*>(p.data()), p.size()};
  }
  size_t first = 0;
  while (first < count) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = count - first;
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      const int wait_ms = deadline.RemainingMsForPoll();
      if (wait_ms == 0) return false;
      pollfd p{fd, POLLOUT, 0};
      const int r = ::poll(&p, 1, wait_ms);
      if (r < 0 && errno != EINTR) return false;
      if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
      if (r == 0 && deadline.Expired()) return false;
      continue;
    }
    size_t left = static_cast<size_t>(n);
    while (first < count && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < count) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

long SendSome(int fd, std::string_view data) {
  while (true) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

bool PeerClosed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void DiscardReadable(int fd, size_t limit) {
  char buf[16384];
  size_t total = 0;
  while (total < limit) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return;
    total += static_cast<size_t>(n);
  }
}

}  // namespace ferry::http::internal
