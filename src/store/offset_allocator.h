// OffsetAllocator: hands out ranges of one segment [0, capacity) by offset.
//
// The master owns one per mounted segment; a member's SSD tier one over its staging memory.
// It never touches the memory: it only decides which offsets are in use. Best fit with coalescing:
// free ranges are indexed by (length, offset) and by offset, so Allocate and Free are O(log n) in
// the number of free ranges, and a freed range merges with free neighbours at once.
//
// Lengths are rounded up to `alignment` (a power of two), and every offset handed out is a
// multiple of it. The caller keeps the (offset, length) it was given and passes both back
// to Free; a Free that overlaps free space (a double free, a range never handed out) or
// leaves the segment is refused and changes nothing.
//
// Not thread-safe: the master's segment table serializes calls per segment.
//
//   ferry::store::OffsetAllocator a(1 << 20, 64);
//   std::optional<ferry::store::OffsetAllocator::Range> r = a.Allocate(1000);
//   if (r) (void)a.Free(r->offset, r->length);  // r->length == 1024
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "ferry/status.h"

namespace ferry::store {

class OffsetAllocator {
 public:
  struct Range {
    uint64_t offset = 0;
    uint64_t length = 0;  // the rounded length: what Free expects back
  };

  // A segment of `capacity` bytes. `alignment` must be a power of two (1 allowed);
  // capacity is rounded down to a multiple of it.
  OffsetAllocator(uint64_t capacity, uint64_t alignment = 64);

  OffsetAllocator(const OffsetAllocator&) = delete;
  OffsetAllocator& operator=(const OffsetAllocator&) = delete;

  // The smallest free range that fits `length` (rounded up), lowest offset among equals;
  // nullopt when length is 0 or nothing fits.
  std::optional<Range> Allocate(uint64_t length);

  // Marks [offset, offset + length) used, as if Allocate had handed it out (recovery of a
  // range recorded before a restart). InvalidArgument (and no change) when the range is
  // misaligned, empty, leaves the segment or is not entirely free.
  Status AllocateAt(uint64_t offset, uint64_t length);

  // Returns [offset, offset + length) to the free space. InvalidArgument (and no change)
  // when the range is misaligned, empty, leaves the segment or overlaps free space.
  Status Free(uint64_t offset, uint64_t length);

  uint64_t capacity() const { return capacity_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t free_bytes() const { return free_bytes_; }
  uint64_t allocated_bytes() const { return capacity_ - free_bytes_; }
  // The longest free range: the largest Allocate that can succeed now.
  uint64_t largest_free() const;
  // How many separate free ranges there are (1 when empty, 0 when full).
  size_t free_ranges() const { return by_offset_.size(); }

 private:
  uint64_t RoundUp(uint64_t length) const;
  void InsertFree(uint64_t offset, uint64_t length);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  const uint64_t alignment_;
  const uint64_t capacity_;
  uint64_t free_bytes_;
  std::map<uint64_t, uint64_t> by_offset_;           // free offset -> length
  std::set<std::pair<uint64_t, uint64_t>> by_size_;  // (length, offset) of each free range
};

}  // namespace ferry::store
