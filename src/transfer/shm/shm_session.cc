#include "transfer/shm/shm_session.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/crypto.h"
#include "common/json_limits.h"
#include "common/mutex.h"
#include "transfer/shm/internal/shm_handshake.h"

namespace ferry::transfer::shm {
namespace {

using internal::RecvFrame;
using internal::SendFrame;

UniqueFd PidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
  return UniqueFd();
#endif
}

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

Result<std::unique_ptr<ShmSession>> ShmSession::Open(const SegmentDescriptor& peer,
                                                     const std::string& secret, Deadline deadline) {
  auto fail = [&](const std::string& why) {
    return UnimplementedError("shm to " + peer.name + " (pid " + std::to_string(peer.pid) +
                              "): " + why + "; using tcp");
  };
  auto it = peer.transport_info.find("shm");
  if (it == peer.transport_info.end() || !internal::IsEngineSocketPath(it->second)) {
    return fail("its descriptor names no shm socket of this user's engines");
  }
  const std::string& path = it->second;
  auto fd = internal::ConnectUnix(path, deadline);
  if (!fd.ok()) return fail(fd.status().message());
  auto pid = internal::PeerPid(fd->get());
  if (!pid.ok()) return fail(pid.status().message());
  if (*pid != peer.pid) {
    return fail("the socket is served by pid " + std::to_string(*pid) + ", not the pid " +
                std::to_string(peer.pid) + " the descriptor claims");
  }
  // Pin the process now, while the connection proves it alive.
  UniqueFd pidfd = PidFd(*pid);
  const std::string nonce = crypto::RandomHex(16);
  Status s =
      SendFrame(fd->get(), nlohmann::json({{"type", "hello"}, {"nonce", nonce}}).dump(), deadline);
  if (!s.ok()) return fail(s.message());
  auto challenge_text = RecvFrame(fd->get(), deadline);
  if (!challenge_text.ok()) return fail(challenge_text.status().message());
  auto challenge = ParseJson(*challenge_text, {.max_bytes = 4096, .max_depth = 2});
  if (!challenge.ok() || !challenge->is_object() || challenge->value("type", "") != "challenge" ||
      !(*challenge)["nonce"].is_string() || !(*challenge)["mac"].is_string()) {
    return fail("malformed handshake challenge");
  }
  const std::string target_nonce = (*challenge)["nonce"].get<std::string>();
  if (!crypto::ConstantTimeEqual((*challenge)["mac"].get<std::string>(),
                                 internal::TargetMac(secret, nonce, target_nonce, *pid))) {
    return fail("the peer could not prove it holds the deployment secret");
  }
  s = SendFrame(
      fd->get(),
      nlohmann::json({{"type", "proof"},
                      {"mac", internal::InitiatorMac(secret, target_nonce, nonce, ::getpid())}})
          .dump(),
      deadline);
  if (!s.ok()) return fail(s.message());
  auto reply = RecvFrame(fd->get(), deadline);
  if (!reply.ok()) return fail(reply.status().message());
  std::unique_ptr<ShmSession> session(
      new ShmSession(std::move(*fd), std::move(pidfd), *pid, path, SegmentDescriptor{}));
  MutexLock lock(&session->mu_);
  if (Status applied = session->ApplyLocked(*reply); !applied.ok()) {
    return fail(applied.message());
  }
  return session;
}

Status ShmSession::ApplyLocked(const std::string& frame) {
  auto j = ParseJson(frame, {.max_bytes = internal::kMaxFrame, .max_depth = 4});
  if (!j.ok() || !j->is_object()) return InvalidArgumentError("malformed shm session message");
  const std::string type = j->value("type", "");
  if (type == "refused") {
    return PermissionDeniedError("refused: " + j->value("error", std::string("no reason")));
  }
  if (type != "descriptor" || !(*j)["descriptor"].is_string()) {
    return InvalidArgumentError("unexpected shm session message '" + type + "'");
  }
  FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d,
                         SegmentDescriptor::FromJson((*j)["descriptor"].get<std::string>()));
  // The process speaks for itself: what matters is which buffers it lists.
  desc_ = std::make_shared<const SegmentDescriptor>(std::move(d));
  return OkStatus();
}

Status ShmSession::DrainLocked() {
  if (dead_) return UnavailableError("shm peer pid " + std::to_string(pid_) + " is gone");
  if (pidfd_.valid() && Readable(pidfd_.get())) {  // the process exited
    dead_ = true;
    return UnavailableError("shm peer pid " + std::to_string(pid_) + " exited");
  }
  while (Readable(fd_.get())) {
    auto frame = RecvFrame(fd_.get(), Deadline::In(std::chrono::milliseconds(100)));
    if (!frame.ok() || !ApplyLocked(*frame).ok()) {
      dead_ = true;
      return UnavailableError("shm peer pid " + std::to_string(pid_) + " closed its session");
    }
  }
  return OkStatus();
}

Status ShmSession::Sync() {
  MutexLock lock(&mu_);
  return DrainLocked();
}

Status ShmSession::Refresh(Deadline deadline) {
  MutexLock lock(&mu_);
  FERRY_RETURN_IF_ERROR(DrainLocked());
  Status s = SendFrame(fd_.get(), R"({"type":"refresh"})", deadline);
  if (s.ok()) {
    auto frame = RecvFrame(fd_.get(), deadline);
    s = frame.ok() ? ApplyLocked(*frame) : frame.status();
  }
  if (!s.ok()) {
    dead_ = true;
    return UnavailableError("shm peer pid " + std::to_string(pid_) + ": " + s.message());
  }
  return OkStatus();
}

bool ShmSession::Covers(uint64_t remote, uint64_t len) const {
  std::shared_ptr<const SegmentDescriptor> d;
  {
    MutexLock lock(&mu_);
    d = desc_;
  }
  return d->FindBuffer(remote, len) != nullptr;
}

}  // namespace ferry::transfer::shm
