// ShmSessionServer: the target side of the shm transport's same-host handshake
// (internal/shm_handshake.h). It serves a Unix socket in SocketDirectory(), proves to each
// initiator which process it is (SO_PEERCRED on the initiator's side, the pid in its MAC),
// answers with this engine's own descriptor, and keeps each session open to push a fresh
// descriptor whenever registrations change.
//
//   FERRY_ASSIGN_OR_RETURN(auto server, ShmSessionServer::Create(host, secret, &pool));
//   descriptor.transport_info["shm"] = server->socket_path();
//   ...  server->DescriptorChanged();   // after every (un)registration
//
// Ptrace permission: cross-memory attach needs the initiator to be allowed to ptrace this
// process. Without Yama (or kernel.yama.ptrace_scope=0) a process of the same user is
// allowed already and nothing is granted. With ptrace_scope=1 the kernel lets a process
// name exactly one other process as its tracer (PR_SET_PTRACER); a wider grant
// (PR_SET_PTRACER_ANY) would let every process of the user read this one's memory, so this
// server grants the one authenticated initiator it has a session with, and refuses shm to a
// second one while the first is connected (that one uses tcp). With ptrace_scope>=2 shm is
// refused (only CAP_SYS_PTRACE could attach).
//
// Shared memory: with a `pool`, every descriptor message also lists the registered buffers
// that are pool allocations ("shared") and passes their memfds (internal/shm_handshake.h),
// so the initiator maps them and copies with memcpy.
//
// Thread safety: socket_path() and DescriptorChanged() may be called from any thread. The
// destructor stops the thread, closes every session and removes the socket file.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/shm/shared_memory_pool.h"
#include "transfer/transport.h"

namespace ferry::transfer::shm {

class ShmSessionServer {
 public:
  // `host` answers LocalDescriptor() and outlives the server; so does `pool` (may be null:
  // nothing is shared). Errors: PermissionDenied (socket directory unsafe), Internal
  // (socket calls failed).
  static Result<std::unique_ptr<ShmSessionServer>> Create(TransportHost* host, std::string secret,
                                                          const SharedMemoryPool* pool = nullptr);
  ~ShmSessionServer();

  const std::string& socket_path() const { return path_; }
  // Pushes the current descriptor to every session (best effort; a session whose socket
  // cannot take it is closed, and its initiator reconnects).
  void DescriptorChanged();
  // Sessions open now.
  size_t sessions() const;

 private:
  struct Session {
    UniqueFd fd;
    pid_t pid = 0;
  };

  // A descriptor message and the memfds that follow it.
  struct Announcement {
    std::string frame;
    std::vector<SharedRegion> shared;
  };

  ShmSessionServer(TransportHost* host, std::string secret, const SharedMemoryPool* pool,
                   std::string path, UniqueFd listen_fd, UniqueFd wake_fd, int yama_scope);
  Announcement Announce() const;
  // Sends `a` on `fd`: the frame, then the descriptors of its shared buffers.
  static Status Send(int fd, const Announcement& a, Deadline deadline);
  void Loop();
  // Runs the handshake on a new connection and lists the session; or says why not.
  Status Handshake(UniqueFd fd);
  // Whether `pid` may attach to us (granting it if Yama needs that). REQUIRES(mu_).
  Status GrantLocked(pid_t pid) FERRY_REQUIRES(mu_);
  void CloseSessionLocked(size_t index) FERRY_REQUIRES(mu_);

  TransportHost* const host_;
  const std::string secret_;
  const SharedMemoryPool* const pool_;  // null: nothing shared
  const std::string path_;
  const UniqueFd listen_fd_;
  const UniqueFd wake_fd_;
  const int yama_scope_;  // -1: no Yama
  std::atomic<bool> stop_{false};

  mutable Mutex mu_;  // also serializes writes to session sockets
  std::vector<Session> sessions_ FERRY_GUARDED_BY(mu_);
  pid_t granted_ FERRY_GUARDED_BY(mu_) = 0;  // PR_SET_PTRACER grantee (ptrace_scope 1)
  std::thread thread_;
};

}  // namespace ferry::transfer::shm
