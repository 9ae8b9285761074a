// ShmSession: the initiator side of the shm transport's same-host handshake
// (internal/shm_handshake.h) with one peer engine. Open() connects to the socket the
// peer's descriptor names and verifies, through the kernel (SO_PEERCRED) and the MACs,
// which process serves it; from then on pid() and view() speak for that process, not for
// the descriptor a peer or a metadata server handed us.
//
//   FERRY_ASSIGN_OR_RETURN(auto session, ShmSession::Open(desc, secret, deadline));
//   FERRY_RETURN_IF_ERROR(session->Sync());          // alive? newest buffers applied
//   ShmSession::View v = session->view();
//   if (auto* m = v.MappingFor(remote, len)) std::memcpy(m->At(remote), src, len);
//   else if (v.Covers(remote, len)) CmaCopy(..., session->pid(), ...);
//
// The session holds the connection (and a pidfd) open: while it is open the process is
// alive, so its pid cannot have been reused by another process; Sync() notices when it
// exits.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/segment.h"
#include "ferry/status.h"
#include "transfer/shm/peer_mapping.h"

namespace ferry::transfer::shm {

class ShmSession {
 public:
  // Errors: Unimplemented when the peer offers no usable shm socket or the handshake fails
  // (wrong secret, another process behind the socket than the descriptor's pid, a refusal,
  // a timeout): the caller uses another transport.
  static Result<std::unique_ptr<ShmSession>> Open(const SegmentDescriptor& peer,
                                                  const std::string& secret, Deadline deadline);

  // The verified pid of the peer process.
  pid_t pid() const { return pid_; }
  // The socket path the session was opened on.
  const std::string& path() const { return path_; }

  // Applies descriptors the peer pushed since the last call and checks the peer is alive.
  // Cheap (a poll without waiting). Errors: Unavailable (the peer exited or closed).
  Status Sync();
  // Asks the peer for its current descriptor and waits for it. Errors: as Sync,
  // DeadlineExceeded.
  Status Refresh(Deadline deadline);
  using Mappings = std::vector<std::shared_ptr<const PeerMapping>>;  // sorted by address
  // What the peer process said last: its buffers, and the mappings of its shared buffers
  // (memory its shm transport allocated). Immutable and lock-free to ask; the mappings
  // stay valid while the view lives, even after the peer stops sharing them.
  class View {
   public:
    // Whether [remote, remote + len) lies in a remote-accessible buffer the peer process
    // itself registered.
    bool Covers(uint64_t remote, uint64_t len) const {
      return desc_->FindBuffer(remote, len) != nullptr;
    }
    // The mapping that holds [remote, remote + len), or null (then the range is reached
    // by cross-memory attach).
    const PeerMapping* MappingFor(uint64_t remote, uint64_t len) const;
    bool has_mappings() const { return !maps_->empty(); }

   private:
    friend class ShmSession;
    std::shared_ptr<const SegmentDescriptor> desc_;
    std::shared_ptr<const Mappings> maps_;
  };
  View view() const;

 private:
  ShmSession(UniqueFd fd, UniqueFd pidfd, pid_t pid, std::string path, SegmentDescriptor d)
      : fd_(std::move(fd)),
        pidfd_(std::move(pidfd)),
        pid_(pid),
        path_(std::move(path)),
        desc_(std::make_shared<const SegmentDescriptor>(std::move(d))) {}
  // Reads every frame waiting (without blocking); Unavailable once the peer is gone.
  Status DrainLocked() FERRY_REQUIRES(mu_);
  // Applies one "descriptor" message, receiving (by `deadline`) and mapping the memfds of
  // its shared buffers. Errors: InvalidArgument; those of RecvFds. A shared buffer that
  // cannot be mapped is left to cross-memory attach (logged).
  Status ApplyLocked(const std::string& frame, Deadline deadline) FERRY_REQUIRES(mu_);

  const UniqueFd fd_;
  const UniqueFd pidfd_;  // -1 where pidfd_open is not available
  const pid_t pid_;
  const std::string path_;
  mutable Mutex mu_;
  std::shared_ptr<const SegmentDescriptor> desc_ FERRY_GUARDED_BY(mu_);
  bool dead_ FERRY_GUARDED_BY(mu_) = false;
  // The peer's shared buffers as of desc_; replaced with it.
  std::shared_ptr<const Mappings> maps_ FERRY_GUARDED_BY(mu_) = std::make_shared<Mappings>();
};

}  // namespace ferry::transfer::shm
