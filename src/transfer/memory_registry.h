// MemoryRegistry: the buffers an engine has registered, sorted by address.
//
//   MemoryRegistry reg;
//   FERRY_RETURN_IF_ERROR(reg.Add({{buf, len, "cpu", true}}));
//   Status ok = reg.CheckInboundRange(addr, n);   // target-side check of a peer's request
//
// Thread safety: thread-safe; CheckInboundRange takes a shared lock only.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "common/mutex.h"
#include "ferry/segment.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"

namespace ferry::transfer {

class MemoryRegistry {
 public:
  // All-or-nothing. Errors: InvalidArgument (null, zero length, wraps the address space,
  // overlaps a registered buffer or another one of `regions`).
  Status Add(std::span<const MemoryRegion> regions);
  // All-or-nothing, by start address. Errors: NotFound naming the address.
  Status Remove(std::span<void* const> addrs);
  // OK if [addr, addr + len) lies inside one registered, remote-accessible buffer.
  // Errors: OutOfRange (not inside any), PermissionDenied (not remote-accessible).
  Status CheckInboundRange(uint64_t addr, uint64_t len) const;
  // Snapshot, sorted by address.
  std::vector<BufferDescriptor> Buffers() const;

 private:
  mutable SharedMutex mu_;
  std::map<uint64_t, BufferDescriptor> buffers_ FERRY_GUARDED_BY(mu_);  // key: addr
};

}  // namespace ferry::transfer
