#include "transfer/shm/shm_session.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/crypto.h"
#include "common/json_limits.h"
#include "common/log.h"
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
  if (Status applied = session->ApplyLocked(*reply, deadline); !applied.ok()) {
    return fail(applied.message());
  }
  return session;
}

Status ShmSession::ApplyLocked(const std::string& frame, Deadline deadline) {
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
  // Shared buffers: each must be one the process lists; their memfds follow the frame.
  std::vector<std::pair<uint64_t, uint64_t>> shared;
  if (auto it = j->find("shared"); it != j->end()) {
    if (!it->is_array() || it->empty() || it->size() > internal::kMaxSharedFds) {
      return InvalidArgumentError("malformed shared buffers in the shm session message");
    }
    for (const auto& r : *it) {
      if (!r.is_object() || !r["addr"].is_number_unsigned() || !r["len"].is_number_unsigned()) {
        return InvalidArgumentError("malformed shared buffer in the shm session message");
      }
      shared.emplace_back(r["addr"].get<uint64_t>(), r["len"].get<uint64_t>());
    }
  }
  std::vector<UniqueFd> fds;
  if (!shared.empty()) {
    FERRY_ASSIGN_OR_RETURN(fds, internal::RecvFds(fd_.get(), shared.size(), deadline));
  }
  auto maps = std::make_shared<Mappings>();
  for (size_t i = 0; i < shared.size(); ++i) {
    const auto [addr, len] = shared[i];
    if (d.FindBuffer(addr, len) == nullptr) continue;  // not a buffer it registered
    struct stat st {};
    if (::fstat(fds[i].get(), &st) != 0) continue;
    std::shared_ptr<const PeerMapping> kept;
    for (const auto& m : *maps_) {
      if (m->SameFile(addr, len, st.st_dev, st.st_ino)) kept = m;  // mapped already
    }
    if (kept == nullptr) {
      auto mapped = PeerMapping::Map(addr, len, std::move(fds[i]));
      if (!mapped.ok()) {
        FERRY_LOG_WARN("shm peer pid {}: {}; using cross-memory attach for it", pid_,
                       mapped.status().message());
        continue;
      }
      kept = std::move(*mapped);
    }
    maps->push_back(std::move(kept));
  }
  std::sort(maps->begin(), maps->end(),
            [](const auto& a, const auto& b) { return a->addr() < b->addr(); });
  // The process speaks for itself: what matters is which buffers it lists.
  desc_ = std::make_shared<const SegmentDescriptor>(std::move(d));
  maps_ = std::move(maps);
  return OkStatus();
}

const PeerMapping* ShmSession::View::MappingFor(uint64_t remote, uint64_t len) const {
  auto it = std::upper_bound(maps_->begin(), maps_->end(), remote,
                             [](uint64_t r, const auto& m) { return r < m->addr(); });
  if (it == maps_->begin()) return nullptr;
  --it;
  return (*it)->Covers(remote, len) ? it->get() : nullptr;
}

ShmSession::View ShmSession::view() const {
  View v;
  MutexLock lock(&mu_);
  v.desc_ = desc_;
  v.maps_ = maps_;
  return v;
}

Status ShmSession::DrainLocked() {
  if (dead_) return UnavailableError("shm peer pid " + std::to_string(pid_) + " is gone");
  if (pidfd_.valid() && Readable(pidfd_.get())) {  // the process exited
    dead_ = true;
    return UnavailableError("shm peer pid " + std::to_string(pid_) + " exited");
  }
  while (Readable(fd_.get())) {
    const Deadline deadline = Deadline::In(std::chrono::milliseconds(100));
    auto frame = RecvFrame(fd_.get(), deadline);
    if (!frame.ok() || !ApplyLocked(*frame, deadline).ok()) {
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
    s = frame.ok() ? ApplyLocked(*frame, deadline) : frame.status();
  }
  if (!s.ok()) {
    dead_ = true;
    return UnavailableError("shm peer pid " + std::to_string(pid_) + ": " + s.message());
  }
  return OkStatus();
}

}  // namespace ferry::transfer::shm
