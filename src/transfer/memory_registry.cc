#include "transfer/memory_registry.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/mutex.h"

namespace ferry::transfer {
namespace {

bool Overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}

}  // namespace

Status MemoryRegistry::Add(std::span<const MemoryRegion> regions) {
  std::vector<BufferDescriptor> adding;
  for (const MemoryRegion& r : regions) {
    uint64_t addr = reinterpret_cast<uintptr_t>(r.addr);
    if (r.addr == nullptr || r.length == 0) {
      return InvalidArgumentError("cannot register a null or empty buffer");
    }
    if (addr + r.length < addr) return InvalidArgumentError("buffer wraps the address space");
    adding.push_back({addr, r.length, r.location, r.remote_accessible});
  }
  std::sort(adding.begin(), adding.end(),
            [](const auto& a, const auto& b) { return a.addr < b.addr; });
  for (size_t i = 1; i < adding.size(); ++i) {
    if (Overlaps(adding[i - 1].addr, adding[i - 1].length, adding[i].addr, adding[i].length)) {
      return InvalidArgumentError(
          fmt::format("buffers {:#x}+{} and {:#x}+{} in one RegisterMemory call overlap",
                      adding[i - 1].addr, adding[i - 1].length, adding[i].addr, adding[i].length));
    }
  }
  MutexLock lock(&mu_);
  for (const auto& b : adding) {
    auto it = buffers_.upper_bound(b.addr);
    if (it != buffers_.end() && Overlaps(b.addr, b.length, it->second.addr, it->second.length)) {
      return InvalidArgumentError(fmt::format("buffer {:#x}+{} overlaps registered {:#x}+{}",
                                              b.addr, b.length, it->second.addr,
                                              it->second.length));
    }
    if (it != buffers_.begin()) {
      --it;
      if (Overlaps(b.addr, b.length, it->second.addr, it->second.length)) {
        return InvalidArgumentError(fmt::format("buffer {:#x}+{} overlaps registered {:#x}+{}",
                                                b.addr, b.length, it->second.addr,
                                                it->second.length));
      }
    }
  }
  for (auto& b : adding) buffers_.emplace(b.addr, std::move(b));
  return OkStatus();
}

Status MemoryRegistry::Remove(std::span<void* const> addrs) {
  MutexLock lock(&mu_);
  for (void* a : addrs) {
    if (!buffers_.count(reinterpret_cast<uintptr_t>(a))) {
      return NotFoundError(fmt::format("no registered buffer starts at {}", a));
    }
  }
  for (void* a : addrs) buffers_.erase(reinterpret_cast<uintptr_t>(a));
  return OkStatus();
}

Status MemoryRegistry::CheckInboundRange(uint64_t addr, uint64_t len) const {
  ReaderMutexLock lock(&mu_);
  auto it = buffers_.upper_bound(addr);
  if (it != buffers_.begin()) {
    --it;
    const BufferDescriptor& b = it->second;
    if (b.Contains(addr, len)) {
      if (!b.remote_accessible) {
        return PermissionDeniedError(
            fmt::format("range {:#x}+{} is in a buffer that is not remote-accessible", addr, len));
      }
      return OkStatus();
    }
  }
  return OutOfRangeError(
      fmt::format("range {:#x}+{} is not inside any registered buffer of the target", addr, len));
}

std::vector<BufferDescriptor> MemoryRegistry::Buffers() const {
  ReaderMutexLock lock(&mu_);
  std::vector<BufferDescriptor> out;
  out.reserve(buffers_.size());
  for (const auto& [a, b] : buffers_) out.push_back(b);
  return out;
}

}  // namespace ferry::transfer
