#include "transfer/shm/shared_memory_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace ferry::transfer::shm {

SharedMemoryPool::~SharedMemoryPool() {
  MutexLock lock(&mu_);
  for (auto& [addr, a] : allocations_) ::munmap(reinterpret_cast<void*>(addr), a.length);
  allocations_.clear();
}

Result<void*> SharedMemoryPool::Allocate(size_t length) {
  if (length == 0) return InvalidArgumentError("shm: cannot allocate 0 bytes");
  auto fail = [&](const char* what) {
    return UnavailableError(fmt::format("shm: cannot allocate {} bytes of shared memory: {}: {}",
                                        length, what, std::strerror(errno)));
  };
  UniqueFd fd(::memfd_create("ferry-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fail("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(length)) != 0) return fail("ftruncate");
  // Sealed: nobody (we included) can shrink the file under a peer's mapping.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail("sealing");
  }
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return fail("mmap");
  MutexLock lock(&mu_);
  allocations_[reinterpret_cast<uint64_t>(p)] = Allocation{length, std::move(fd)};
  return p;
}

Status SharedMemoryPool::Free(void* addr) {
  MutexLock lock(&mu_);
  auto it = allocations_.find(reinterpret_cast<uint64_t>(addr));
  if (it == allocations_.end()) {
    return NotFoundError(fmt::format("shm: {} is not memory shm allocated", addr));
  }
  ::munmap(addr, it->second.length);
  allocations_.erase(it);
  return OkStatus();
}

std::vector<SharedRegion> SharedMemoryPool::Share(const std::vector<BufferDescriptor>& buffers,
                                                  size_t max) const {
  std::vector<SharedRegion> out;
  MutexLock lock(&mu_);
  for (const BufferDescriptor& b : buffers) {
    if (out.size() >= max) break;
    if (!b.remote_accessible || b.length == 0) continue;
    auto it = allocations_.find(b.addr);
    if (it == allocations_.end() || b.length > it->second.length) continue;
    UniqueFd dup(::fcntl(it->second.fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!dup.valid()) break;  // out of descriptors: the rest go by cross-memory attach
    out.push_back(SharedRegion{b.addr, b.length, std::move(dup)});
  }
  return out;
}

}  // namespace ferry::transfer::shm
