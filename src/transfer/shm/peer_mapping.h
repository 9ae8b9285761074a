// PeerMapping: one buffer of a same-host peer mapped into this process, from the memfd the
// peer passed over its authenticated shm session (shared_memory_pool.h). The shm transport
// copies into and out of it with memcpy. What the peer sent is checked, not trusted: the
// descriptor must be a regular file sealed against shrinking (a memfd of the shm
// transport), at least as long as the buffer, so that no access through the mapping can
// fault.
//
//   FERRY_ASSIGN_OR_RETURN(auto m, PeerMapping::Map(addr, length, std::move(fd)));
//   if (m->Covers(remote, n)) std::memcpy(m->At(remote), src, n);
//
// Thread safety: immutable after Map; the mapping is removed when the last shared_ptr goes
// (copies in flight hold one).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "common/unique_fd.h"
#include "ferry/status.h"

namespace ferry::transfer::shm {

class PeerMapping {
 public:
  // Maps [0, length) of `fd` as the peer's buffer at `addr`. Errors: InvalidArgument (not
  // a sealed regular file, shorter than length, length 0), Unavailable (mmap failed).
  static Result<std::shared_ptr<const PeerMapping>> Map(uint64_t addr, uint64_t length,
                                                        UniqueFd fd);
  ~PeerMapping();
  PeerMapping(const PeerMapping&) = delete;
  PeerMapping& operator=(const PeerMapping&) = delete;

  uint64_t addr() const { return addr_; }
  uint64_t length() const { return length_; }
  // Whether [remote, remote + len) lies inside the buffer.
  bool Covers(uint64_t remote, uint64_t len) const {
    return remote >= addr_ && len <= length_ && remote - addr_ <= length_ - len;
  }
  // This process's address of the peer's `remote` (inside the buffer).
  char* At(uint64_t remote) const { return base_ + (remote - addr_); }
  // Whether this maps the same file (so a repeated announcement needs no new mapping).
  bool SameFile(uint64_t addr, uint64_t length, dev_t dev, ino_t ino) const {
    return addr == addr_ && length == length_ && dev == dev_ && ino == ino_;
  }

 private:
  PeerMapping(uint64_t addr, uint64_t length, char* base, dev_t dev, ino_t ino)
      : addr_(addr), length_(length), base_(base), dev_(dev), ino_(ino) {}

  const uint64_t addr_;
  const uint64_t length_;
  char* const base_;
  const dev_t dev_;
  const ino_t ino_;
};

}  // namespace ferry::transfer::shm
