#include "transfer/shm/peer_mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace ferry::transfer::shm {

Result<std::shared_ptr<const PeerMapping>> PeerMapping::Map(uint64_t addr, uint64_t length,
                                                            UniqueFd fd) {
  if (length == 0) return InvalidArgumentError("shm: an empty shared buffer");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return InvalidArgumentError(
        fmt::format("shm: the peer's shared buffer at {:#x} is not a regular file", addr));
  }
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return InvalidArgumentError(fmt::format(
        "shm: the peer's shared buffer at {:#x} is not sealed against shrinking", addr));
  }
  if (static_cast<uint64_t>(st.st_size) < length) {
    return InvalidArgumentError(fmt::format(
        "shm: the peer's shared buffer at {:#x} is {} bytes, not {}", addr, st.st_size, length));
  }
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    return UnavailableError(
        fmt::format("shm: cannot map the peer's buffer at {:#x}: {}", addr, std::strerror(errno)));
  }
  return std::shared_ptr<const PeerMapping>(
      new PeerMapping(addr, length, static_cast<char*>(p), st.st_dev, st.st_ino));
}

PeerMapping::~PeerMapping() { ::munmap(base_, length_); }

}  // namespace ferry::transfer::shm
