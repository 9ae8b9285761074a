#include "transfer/shm/shm_session_server.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/crypto.h"
#include "common/json_limits.h"
#include "common/log.h"
#include "common/mutex.h"
#include "transfer/shm/internal/shm_handshake.h"

namespace ferry::transfer::shm {
namespace {

using internal::RecvFrame;
using internal::SendFrame;

// A handshake that has not finished by then is dropped (a stalled initiator costs the
// server thread at most this long).
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(1000);
// Pushing a descriptor to a session must not block the registering thread for long.
constexpr auto kPushTimeout = std::chrono::milliseconds(100);

int ReadYamaScope() {
  std::ifstream in("/proc/sys/kernel/yama/ptrace_scope");
  int v = -1;
  if (!(in >> v)) return -1;
  return v;
}

// Removes sockets of engines that died without cleaning up (<pid>-<hex>.sock with a dead pid).
void RemoveStaleSockets(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string path = dir + "/" + e->d_name;
    if (!internal::IsEngineSocketPath(path)) continue;
    pid_t pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) ::unlink(path.c_str());
  }
  ::closedir(d);
}

}  // namespace

ShmSessionServer::Announcement ShmSessionServer::Announce() const {
  const SegmentDescriptor d = host_->LocalDescriptor();
  Announcement a;
  if (pool_ != nullptr) a.shared = pool_->Share(d.buffers, internal::kMaxSharedFds);
  nlohmann::json m = {{"type", "descriptor"}, {"descriptor", d.ToJson()}};
  if (!a.shared.empty()) {
    nlohmann::json shared = nlohmann::json::array();
    for (const SharedRegion& r : a.shared) shared.push_back({{"addr", r.addr}, {"len", r.length}});
    m["shared"] = std::move(shared);
  }
  a.frame = m.dump();
  return a;
}

Status ShmSessionServer::Send(int fd, const Announcement& a, Deadline deadline) {
  FERRY_RETURN_IF_ERROR(SendFrame(fd, a.frame, deadline));
  if (a.shared.empty()) return OkStatus();
  std::vector<int> fds;
  for (const SharedRegion& r : a.shared) fds.push_back(r.fd.get());
  return internal::SendFds(fd, fds, deadline);
}

Result<std::unique_ptr<ShmSessionServer>> ShmSessionServer::Create(TransportHost* host,
                                                                   std::string secret,
                                                                   const SharedMemoryPool* pool) {
  FERRY_ASSIGN_OR_RETURN(std::string dir, internal::SocketDirectory());
  RemoveStaleSockets(dir);
  const std::string path =
      dir + "/" + std::to_string(::getpid()) + "-" + crypto::RandomHex(8) + ".sock";
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return InternalError(std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return InternalError("shm socket path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd.get(), 128) != 0) {
    return InternalError("cannot serve " + path + ": " + std::strerror(errno));
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) {
    ::unlink(path.c_str());
    return InternalError(std::string("eventfd: ") + std::strerror(errno));
  }
  return std::unique_ptr<ShmSessionServer>(new ShmSessionServer(
      host, std::move(secret), pool, path, std::move(fd), std::move(wake), ReadYamaScope()));
}

ShmSessionServer::ShmSessionServer(TransportHost* host, std::string secret,
                                   const SharedMemoryPool* pool, std::string path,
                                   UniqueFd listen_fd, UniqueFd wake_fd, int yama_scope)
    : host_(host),
      secret_(std::move(secret)),
      pool_(pool),
      path_(std::move(path)),
      listen_fd_(std::move(listen_fd)),
      wake_fd_(std::move(wake_fd)),
      yama_scope_(yama_scope) {
  thread_ = std::thread([this] { Loop(); });
}

ShmSessionServer::~ShmSessionServer() {
  stop_ = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
  thread_.join();
  ::unlink(path_.c_str());
  MutexLock lock(&mu_);
  sessions_.clear();
}

size_t ShmSessionServer::sessions() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

Status ShmSessionServer::GrantLocked(pid_t pid) {
  if (yama_scope_ <= 0) return OkStatus();  // same-user attach is allowed already
  if (yama_scope_ >= 2) {
    return PermissionDeniedError("kernel.yama.ptrace_scope=" + std::to_string(yama_scope_) +
                                 " forbids cross-memory attach between user processes");
  }
  if (granted_ == pid) return OkStatus();
  bool grantee_connected = false;
  for (const Session& s : sessions_) grantee_connected |= s.pid == granted_;
  if (granted_ != 0 && grantee_connected) {
    return PermissionDeniedError(
        "kernel.yama.ptrace_scope=1 lets this process name one tracer, and pid " +
        std::to_string(granted_) + " holds it");
  }
  if (::prctl(PR_SET_PTRACER, static_cast<unsigned long>(pid), 0, 0, 0) != 0) {
    return PermissionDeniedError(std::string("prctl(PR_SET_PTRACER) failed: ") +
                                 std::strerror(errno));
  }
  granted_ = pid;
  return OkStatus();
}

Status ShmSessionServer::Handshake(UniqueFd fd) {
  const Deadline deadline = Deadline::In(kHandshakeTimeout);
  FERRY_ASSIGN_OR_RETURN(pid_t peer, internal::PeerPid(fd.get()));
  FERRY_ASSIGN_OR_RETURN(std::string hello_text, RecvFrame(fd.get(), deadline));
  FERRY_ASSIGN_OR_RETURN(nlohmann::json hello,
                         ParseJson(hello_text, {.max_bytes = 4096, .max_depth = 2}));
  if (!hello.is_object() || hello.value("type", "") != "hello" || !hello["nonce"].is_string()) {
    return InvalidArgumentError("shm handshake: expected hello");
  }
  const std::string initiator_nonce = hello["nonce"].get<std::string>();
  const std::string nonce = crypto::RandomHex(16);
  nlohmann::json challenge = {
      {"type", "challenge"},
      {"nonce", nonce},
      {"mac", internal::TargetMac(secret_, initiator_nonce, nonce, ::getpid())}};
  FERRY_RETURN_IF_ERROR(SendFrame(fd.get(), challenge.dump(), deadline));
  FERRY_ASSIGN_OR_RETURN(std::string proof_text, RecvFrame(fd.get(), deadline));
  FERRY_ASSIGN_OR_RETURN(nlohmann::json proof,
                         ParseJson(proof_text, {.max_bytes = 4096, .max_depth = 2}));
  if (!proof.is_object() || proof.value("type", "") != "proof" || !proof["mac"].is_string() ||
      !crypto::ConstantTimeEqual(proof["mac"].get<std::string>(),
                                 internal::InitiatorMac(secret_, nonce, initiator_nonce, peer))) {
    SendFrame(fd.get(),
              nlohmann::json({{"type", "refused"},
                              {"error",
                               "authentication failed: set the same FERRY_KV_SECRET "
                               "on both engines"}})
                  .dump(),
              deadline)
        .IgnoreError();
    return PermissionDeniedError("shm handshake from pid " + std::to_string(peer) +
                                 ": bad proof (another secret?)");
  }
  MutexLock lock(&mu_);
  if (Status granted = GrantLocked(peer); !granted.ok()) {
    SendFrame(fd.get(), nlohmann::json({{"type", "refused"}, {"error", granted.message()}}).dump(),
              deadline)
        .IgnoreError();
    return granted;
  }
  // Sent and listed under one lock: a registration change after this point is pushed.
  FERRY_RETURN_IF_ERROR(Send(fd.get(), Announce(), deadline));
  sessions_.push_back(Session{std::move(fd), peer});
  return OkStatus();
}

void ShmSessionServer::CloseSessionLocked(size_t index) {
  if (sessions_[index].pid == granted_) granted_ = 0;  // the next initiator may have it
  sessions_.erase(sessions_.begin() + static_cast<ptrdiff_t>(index));
}

void ShmSessionServer::DescriptorChanged() {
  MutexLock lock(&mu_);
  if (sessions_.empty()) return;
  const Announcement message = Announce();
  for (size_t i = sessions_.size(); i-- > 0;) {
    if (!Send(sessions_[i].fd.get(), message, Deadline::In(kPushTimeout)).ok()) {
      CloseSessionLocked(i);
    }
  }
}

void ShmSessionServer::Loop() {
  std::vector<pollfd> fds;
  std::vector<pid_t> pids;
  while (!stop_) {
    fds.clear();
    pids.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    fds.push_back({listen_fd_.get(), POLLIN, 0});
    {
      MutexLock lock(&mu_);
      for (const Session& s : sessions_) {
        fds.push_back({s.fd.get(), POLLIN, 0});
        pids.push_back(s.pid);
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) {
      FERRY_LOG_ERROR("shm session server: poll failed: {}", std::strerror(errno));
      return;
    }
    if (stop_) return;
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) {
        if (Status s = Handshake(UniqueFd(c)); !s.ok()) {
          FERRY_LOG_DEBUG("shm session server: {}", s.ToString());
        }
      } else if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // do not spin
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      MutexLock lock(&mu_);
      size_t at = 0;
      while (at < sessions_.size() && sessions_[at].fd.get() != fds[i].fd) ++at;
      if (at == sessions_.size()) continue;
      auto msg = (fds[i].revents & POLLIN) ? RecvFrame(fds[i].fd, Deadline::In(kPushTimeout))
                                           : Result<std::string>(UnavailableError("hung up"));
      if (!msg.ok()) {
        CloseSessionLocked(at);
        continue;
      }
      auto j = ParseJson(*msg, {.max_bytes = 4096, .max_depth = 2});
      if (!j.ok() || !j->is_object() || j->value("type", "") != "refresh" ||
          !Send(fds[i].fd, Announce(), Deadline::In(kPushTimeout)).ok()) {
        CloseSessionLocked(at);
      }
    }
  }
}

}  // namespace ferry::transfer::shm
