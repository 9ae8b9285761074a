#include "store/offset_allocator.h"

#include <iterator>
#include <limits>
#include <string>

namespace ferry::store {

namespace {

uint64_t CheckedAlignment(uint64_t alignment) {
  // A zero or non-power-of-two alignment is a programming error; fall back to 1 so that
  // the arithmetic below stays defined.
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) return 1;
  return alignment;
}

}  // namespace

OffsetAllocator::OffsetAllocator(uint64_t capacity, uint64_t alignment)
    : alignment_(CheckedAlignment(alignment)),
      capacity_(capacity & ~(alignment_ - 1)),
      free_bytes_(0) {
  if (capacity_ > 0) InsertFree(0, capacity_);
}

uint64_t OffsetAllocator::RoundUp(uint64_t length) const {
  if (length > std::numeric_limits<uint64_t>::max() - (alignment_ - 1)) return 0;
  return (length + alignment_ - 1) & ~(alignment_ - 1);
}

void OffsetAllocator::InsertFree(uint64_t offset, uint64_t length) {
  by_offset_.emplace(offset, length);
  by_size_.emplace(length, offset);
  free_bytes_ += length;
}

void OffsetAllocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  by_size_.erase({it->second, it->first});
  free_bytes_ -= it->second;
  by_offset_.erase(it);
}

std::optional<OffsetAllocator::Range> OffsetAllocator::Allocate(uint64_t length) {
  const uint64_t want = RoundUp(length);
  if (want == 0) return std::nullopt;
  auto fit = by_size_.lower_bound({want, 0});
  if (fit == by_size_.end()) return std::nullopt;
  const uint64_t offset = fit->second;
  const uint64_t have = fit->first;
  EraseFree(by_offset_.find(offset));
  if (have > want) InsertFree(offset + want, have - want);
  return Range{offset, want};
}

Status OffsetAllocator::AllocateAt(uint64_t offset, uint64_t length) {
  if (length == 0 || offset % alignment_ != 0 || length % alignment_ != 0 || offset > capacity_ ||
      length > capacity_ - offset) {
    return InvalidArgumentError("range [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") is not an aligned range of a " +
                                std::to_string(capacity_) + "-byte segment");
  }
  // The free range that starts at or before `offset` must cover all of it.
  auto it = by_offset_.upper_bound(offset);
  if (it == by_offset_.begin()) {
    return InvalidArgumentError("range at " + std::to_string(offset) + " is in use");
  }
  --it;
  const uint64_t start = it->first;
  const uint64_t have = it->second;
  if (start + have < offset + length) {
    return InvalidArgumentError("range [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") overlaps a range in use");
  }
  EraseFree(it);
  if (offset > start) InsertFree(start, offset - start);
  if (start + have > offset + length) InsertFree(offset + length, start + have - offset - length);
  return OkStatus();
}

Status OffsetAllocator::Free(uint64_t offset, uint64_t length) {
  if (length == 0 || offset % alignment_ != 0 || length % alignment_ != 0 || offset > capacity_ ||
      length > capacity_ - offset) {
    return InvalidArgumentError("free of [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") is not an aligned range of a " +
                                std::to_string(capacity_) + "-byte segment");
  }
  const uint64_t end = offset + length;
  // The free range at or after `offset`, and the one before it.
  auto next = by_offset_.lower_bound(offset);
  auto prev = next == by_offset_.begin() ? by_offset_.end() : std::prev(next);
  const bool overlaps_next = next != by_offset_.end() && next->first < end;
  const bool overlaps_prev = prev != by_offset_.end() && prev->first + prev->second > offset;
  if (overlaps_next || overlaps_prev) {
    return InvalidArgumentError("free of [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") overlaps free space (double free?)");
  }
  uint64_t start = offset;
  uint64_t merged = length;
  if (prev != by_offset_.end() && prev->first + prev->second == offset) {
    start = prev->first;
    merged += prev->second;
    EraseFree(prev);
  }
  if (next != by_offset_.end() && next->first == end) {
    merged += next->second;
    EraseFree(next);
  }
  InsertFree(start, merged);
  return OkStatus();
}

uint64_t OffsetAllocator::largest_free() const {
  return by_size_.empty() ? 0 : by_size_.rbegin()->first;
}

}  // namespace ferry::store
