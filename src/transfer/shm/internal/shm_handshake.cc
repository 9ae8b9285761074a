#include "transfer/shm/internal/shm_handshake.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/crypto.h"

namespace ferry::transfer::shm::internal {
namespace {

// Waits for `events` on fd. Returns false at the deadline.
bool WaitFor(int fd, short events, Deadline deadline) {
  pollfd p{fd, events, 0};
  while (true) {
    int r = ::poll(&p, 1, deadline.RemainingMsForPoll());
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the next syscall report the error
  }
}

Status IoAll(int fd, char* buf, size_t len, bool sending, Deadline deadline) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = sending ? ::send(fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : ::recv(fd, buf + done, len - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0 && !sending) return UnavailableError("shm peer closed the connection");
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return UnavailableError(std::string("shm peer connection: ") + std::strerror(errno));
    }
    if (!WaitFor(fd, sending ? POLLOUT : POLLIN, deadline)) {
      return DeadlineExceededError("shm handshake: the peer did not answer in time");
    }
  }
  return OkStatus();
}

std::string Mac(std::string_view secret, std::string_view role, std::string_view a,
                std::string_view b, int64_t pid) {
  std::string text = "ferry-shm-v1|";
  text.append(role);
  text += '|';
  text.append(a);
  text += '|';
  text.append(b);
  text += '|';
  text += std::to_string(pid);
  return crypto::HexEncode(crypto::HmacSha256(secret, text));
}

}  // namespace

Status SendFrame(int fd, std::string_view payload, Deadline deadline) {
  if (payload.size() > kMaxFrame) return InvalidArgumentError("shm handshake frame too large");
  std::string buf(4 + payload.size(), '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(buf.data() + 4, payload.data(), payload.size());
  return IoAll(fd, buf.data(), buf.size(), /*sending=*/true, deadline);
}

Result<std::string> RecvFrame(int fd, Deadline deadline) {
  unsigned char len[4];
  FERRY_RETURN_IF_ERROR(IoAll(fd, reinterpret_cast<char*>(len), 4, false, deadline));
  const uint32_t n = len[0] | len[1] << 8 | len[2] << 16 | static_cast<uint32_t>(len[3]) << 24;
  if (n > kMaxFrame)
    return InvalidArgumentError("shm handshake frame of " + std::to_string(n) +
                                " bytes is over the limit");
  std::string out(n, '\0');
  FERRY_RETURN_IF_ERROR(IoAll(fd, out.data(), n, false, deadline));
  return out;
}

Status SendFds(int fd, std::span<const int> fds, Deadline deadline) {
  if (fds.empty() || fds.size() > kMaxSharedFds) {
    return InvalidArgumentError("shm: " + std::to_string(fds.size()) + " descriptors to send");
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSharedFds)] = {};
  char byte = 'F';
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  while (true) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) return OkStatus();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return UnavailableError(std::string("shm peer connection: ") + std::strerror(errno));
    }
    if (!WaitFor(fd, POLLOUT, deadline)) {
      return DeadlineExceededError("shm: the peer did not take shared memory in time");
    }
  }
}

Result<std::vector<UniqueFd>> RecvFds(int fd, size_t count, Deadline deadline) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSharedFds)] = {};
  char byte = 0;
  iovec iov{&byte, 1};
  msghdr msg{};
  ssize_t n = 0;
  while (true) {
    msg = msghdr{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return UnavailableError(std::string("shm peer connection: ") + std::strerror(errno));
    }
    if (!WaitFor(fd, POLLIN, deadline)) {
      return DeadlineExceededError("shm: the peer's shared memory did not arrive in time");
    }
  }
  if (n == 0) return UnavailableError("shm peer closed the connection");
  std::vector<UniqueFd> got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int one = -1;
      std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      got.emplace_back(one);
    }
  }
  if (byte != 'F' || got.size() != count || (msg.msg_flags & MSG_CTRUNC) != 0) {
    return InvalidArgumentError("shm: expected " + std::to_string(count) +
                                " shared-memory descriptors, got " + std::to_string(got.size()));
  }
  return got;
}

Result<pid_t> PeerPid(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) {
    return InternalError(std::string("SO_PEERCRED failed: ") + std::strerror(errno));
  }
  return cred.pid;
}

std::string TargetMac(std::string_view secret, std::string_view initiator_nonce,
                      std::string_view target_nonce, int64_t target_pid) {
  return Mac(secret, "target", initiator_nonce, target_nonce, target_pid);
}

std::string InitiatorMac(std::string_view secret, std::string_view target_nonce,
                         std::string_view initiator_nonce, int64_t initiator_pid) {
  return Mac(secret, "initiator", target_nonce, initiator_nonce, initiator_pid);
}

Result<std::string> SocketDirectory() {
  const std::string dir = "/tmp/ferry-" + std::to_string(::getuid());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return PermissionDeniedError("cannot create " + dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid() ||
      (st.st_mode & 077) != 0) {
    return PermissionDeniedError(dir +
                                 " is not a directory owned by this user with mode 0700; "
                                 "remove it to let same-host transfers use shm");
  }
  return dir;
}

bool IsEngineSocketPath(std::string_view path) {
  const std::string dir = "/tmp/ferry-" + std::to_string(::getuid()) + "/";
  if (path.size() <= dir.size() || path.substr(0, dir.size()) != dir) return false;
  std::string_view name = path.substr(dir.size());
  constexpr std::string_view kSuffix = ".sock";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  name.remove_suffix(kSuffix.size());
  size_t dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash + 1 == name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = i < dash ? (c >= '0' && c <= '9')
                       : i == dash || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) return false;
  }
  return true;
}

Result<UniqueFd> ConnectUnix(const std::string& path, Deadline deadline) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return InvalidArgumentError("socket path too long");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return UnavailableError("cannot connect to " + path + ": " + std::strerror(errno));
    }
    if (!WaitFor(fd.get(), POLLOUT, deadline)) {
      return DeadlineExceededError("connecting to " + path + " timed out");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return UnavailableError("cannot connect to " + path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace ferry::transfer::shm::internal
