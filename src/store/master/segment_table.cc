#include "store/master/segment_table.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/mutex.h"
#include "store/error_code.h"

namespace ferry::store {

SegmentTable::SegmentTable(uint64_t alignment) : alignment_(alignment) {}

Status SegmentTable::Mount(const SegmentInfo& info) {
  if (info.id.empty() || info.name.empty()) {
    return StoreError(ErrorCode::kInvalidParams, "a segment needs an id and a name");
  }
  if (info.size == 0 || info.base > std::numeric_limits<uint64_t>::max() - info.size) {
    return StoreError(ErrorCode::kInvalidParams,
                      "segment '" + info.id + "' has an empty or wrapping range");
  }
  MutexLock lock(&mu_);
  auto it = segments_.find(info.id);
  if (it != segments_.end()) {
    const SegmentInfo& old = it->second.info;
    if (old.name == info.name && old.hostname == info.hostname && old.base == info.base &&
        old.size == info.size && old.client_id == info.client_id) {
      it->second.awaiting_remount = false;
      return OkStatus();
    }
    return StoreError(ErrorCode::kSegmentAlreadyExists,
                      "segment '" + info.id + "' is mounted with other parameters");
  }
  Segment seg;
  seg.info = info;
  seg.names = std::make_shared<const AllocatedRange::Names>(
      AllocatedRange::Names{info.id, info.name, info.hostname, info.client_id});
  seg.generation = next_generation_++;
  seg.allocator = std::make_unique<OffsetAllocator>(info.size, alignment_);
  segments_.emplace(info.id, std::move(seg));
  ++view_version_;
  return OkStatus();
}

Status SegmentTable::Restore(const SegmentInfo& info) {
  FERRY_RETURN_IF_ERROR(Mount(info));
  MutexLock lock(&mu_);
  segments_.find(info.id)->second.awaiting_remount = true;
  return OkStatus();
}

Result<AllocatedRange> SegmentTable::RestoreRange(std::string_view segment_id, uint64_t address,
                                                  uint64_t length) {
  MutexLock lock(&mu_);
  auto it = segments_.find(segment_id);
  if (it == segments_.end()) {
    return StoreError(ErrorCode::kSegmentNotFound,
                      "segment '" + std::string(segment_id) + "' is not mounted");
  }
  Segment& seg = it->second;
  if (address < seg.info.base) {
    return StoreError(ErrorCode::kInvalidParams, "address below segment '" + seg.info.id + "'");
  }
  Status s = seg.allocator->AllocateAt(address - seg.info.base, length);
  if (!s.ok()) return StoreError(ErrorCode::kInvalidParams, s.message());
  return AllocatedRange{seg.names, seg.generation, address, length};
}

std::vector<std::string> SegmentTable::AwaitingRemount() const {
  MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, seg] : segments_) {
    if (seg.awaiting_remount) ids.push_back(id);
  }
  return ids;
}

bool SegmentTable::AwaitingRemountBy(std::string_view client_id) const {
  MutexLock lock(&mu_);
  for (const auto& [id, seg] : segments_) {
    if (seg.awaiting_remount && seg.info.client_id == client_id) return true;
  }
  return false;
}

Status SegmentTable::Unmount(std::string_view id) {
  MutexLock lock(&mu_);
  auto it = segments_.find(id);
  if (it == segments_.end()) {
    return StoreError(ErrorCode::kSegmentNotFound,
                      "segment '" + std::string(id) + "' is not mounted");
  }
  segments_.erase(it);
  ++view_version_;
  return OkStatus();
}

std::vector<std::string> SegmentTable::SegmentsOf(std::string_view client_id) const {
  MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, seg] : segments_) {
    if (seg.info.client_id == client_id) ids.push_back(id);
  }
  return ids;
}

Result<std::vector<AllocatedRange>> SegmentTable::AllocateReplicas(
    uint64_t length, size_t replica_num, const std::vector<std::string>& preferred,
    std::string_view writer_hostname, bool prefer_same_node) {
  if (length == 0 || replica_num == 0) {
    return StoreError(ErrorCode::kInvalidParams, "an object needs a size and a replica");
  }
  MutexLock lock(&mu_);
  if (replica_num > segments_.size()) {
    return StoreError(ErrorCode::kNoAvailableHandle,
                      std::to_string(replica_num) + " replicas asked, " +
                          std::to_string(segments_.size()) + " segments mounted");
  }
  // Rank every segment that can hold the object: preferred ones by their place in the
  // list, then same-node ones, then by free bytes (most first), then by id for stability.
  struct Candidate {
    size_t rank;
    uint64_t free;
    Segment* seg;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(segments_.size());
  for (auto& [id, seg] : segments_) {
    if (seg.awaiting_remount || seg.allocator->largest_free() < length) continue;
    size_t rank = preferred.size() + 1;
    for (size_t i = 0; i < preferred.size(); ++i) {
      if (preferred[i] == seg.info.name || preferred[i] == seg.info.hostname ||
          preferred[i] == seg.info.id) {
        rank = i;
        break;
      }
    }
    if (rank > preferred.size() && prefer_same_node && !writer_hostname.empty() &&
        seg.info.hostname == writer_hostname) {
      rank = preferred.size();
    }
    candidates.push_back({rank, seg.allocator->free_bytes(), &seg});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    if (a.free != b.free) return a.free > b.free;
    return a.seg->info.id < b.seg->info.id;
  });
  std::vector<AllocatedRange> out;
  out.reserve(replica_num);
  for (const Candidate& c : candidates) {
    if (out.size() == replica_num) break;
    auto r = c.seg->allocator->Allocate(length);
    if (!r) continue;  // largest_free fit but alignment rounding did not
    out.push_back({c.seg->names, c.seg->generation, c.seg->info.base + r->offset, r->length});
  }
  if (out.size() < replica_num) {
    for (const AllocatedRange& a : out) {
      Segment& seg = segments_.find(a.segment_id())->second;
      seg.allocator->Free(a.address - seg.info.base, a.length).IgnoreError();
    }
    return StoreError(ErrorCode::kNoAvailableHandle, "no room for " + std::to_string(replica_num) +
                                                         " replica(s) of " +
                                                         std::to_string(length) + " bytes");
  }
  return out;
}

void SegmentTable::Release(const AllocatedRange& range, Clock::time_point not_before,
                           Clock::time_point now) {
  MutexLock lock(&mu_);
  auto it = segments_.find(range.segment_id());
  if (it == segments_.end() || it->second.generation != range.generation) return;
  Segment& seg = it->second;
  if (range.address < seg.info.base) return;
  const uint64_t offset = range.address - seg.info.base;
  if (not_before > now) {
    seg.held.emplace(not_before, Held{offset, range.length});
    seg.held_bytes += range.length;
    return;
  }
  seg.allocator->Free(offset, range.length).IgnoreError();
}

size_t SegmentTable::Sweep(Clock::time_point now) {
  MutexLock lock(&mu_);
  size_t freed = 0;
  for (auto& [id, seg] : segments_) {
    auto end = seg.held.upper_bound(now);
    for (auto h = seg.held.begin(); h != end; ++h) {
      seg.allocator->Free(h->second.offset, h->second.length).IgnoreError();
      seg.held_bytes -= h->second.length;
      ++freed;
    }
    seg.held.erase(seg.held.begin(), end);
  }
  return freed;
}

bool SegmentTable::Has(std::string_view id) const {
  MutexLock lock(&mu_);
  return segments_.find(id) != segments_.end();
}

uint64_t SegmentTable::view_version() const {
  MutexLock lock(&mu_);
  return view_version_;
}

uint64_t SegmentTable::GenerationOf(std::string_view id) const {
  MutexLock lock(&mu_);
  auto it = segments_.find(id);
  return it == segments_.end() ? 0 : it->second.generation;
}

std::vector<SegmentInfo> SegmentTable::List() const {
  MutexLock lock(&mu_);
  std::vector<SegmentInfo> out;
  out.reserve(segments_.size());
  for (const auto& [id, seg] : segments_) out.push_back(seg.info);
  return out;
}

SegmentTable::Totals SegmentTable::totals() const {
  MutexLock lock(&mu_);
  Totals t;
  t.segments = segments_.size();
  for (const auto& [id, seg] : segments_) {
    t.capacity += seg.allocator->capacity();
    t.allocated += seg.allocator->allocated_bytes();
    t.held += seg.held_bytes;
    t.awaiting_remount += seg.awaiting_remount ? 1 : 0;
  }
  return t;
}

}  // namespace ferry::store
