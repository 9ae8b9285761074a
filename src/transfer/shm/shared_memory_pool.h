// SharedMemoryPool: the memory the shm transport allocates for its engine
// (Transport::AllocateMemory), which same-host peers map instead of reaching it with
// cross-memory attach. Each allocation is a memfd, sealed against shrinking and growing
// (so a peer that maps it can never fault on a truncated file), mapped MAP_SHARED here.
// The session server passes a duplicate of its descriptor to authenticated initiators for
// every registered buffer that is one of these allocations (Share).
//
//   SharedMemoryPool pool;
//   FERRY_ASSIGN_OR_RETURN(void* p, pool.Allocate(64 << 20));
//   std::vector<SharedRegion> shared = pool.Share(descriptor.buffers);  // fds to pass
//   FERRY_RETURN_IF_ERROR(pool.Free(p));
//
// Thread safety: all methods are thread-safe. The destructor unmaps every allocation
// (peers' mappings keep the pages alive; nothing of this process is reachable through
// them afterwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/segment.h"
#include "ferry/status.h"

namespace ferry::transfer::shm {

// One buffer a peer may map: where it is here, and a descriptor of its memfd.
struct SharedRegion {
  uint64_t addr = 0;
  uint64_t length = 0;
  UniqueFd fd;
};

class SharedMemoryPool {
 public:
  SharedMemoryPool() = default;
  ~SharedMemoryPool();
  SharedMemoryPool(const SharedMemoryPool&) = delete;
  SharedMemoryPool& operator=(const SharedMemoryPool&) = delete;

  // `length` bytes of zeroed, page-aligned shared memory. Errors: InvalidArgument (0),
  // Unavailable (memfd_create, ftruncate, sealing or mmap failed: the caller uses other
  // memory).
  Result<void*> Allocate(size_t length);
  // Unmaps and closes an allocation. Errors: NotFound (not one of ours).
  Status Free(void* addr);
  // For each remote-accessible buffer in `buffers` that starts at an allocation and fits
  // in it, a duplicate of that allocation's descriptor; at most `max` of them.
  std::vector<SharedRegion> Share(const std::vector<BufferDescriptor>& buffers, size_t max) const;

 private:
  struct Allocation {
    size_t length = 0;
    UniqueFd fd;
  };
  mutable Mutex mu_;
  std::map<uint64_t, Allocation> allocations_ FERRY_GUARDED_BY(mu_);  // by address
};

}  // namespace ferry::transfer::shm
