// SegmentTable: the master's view of the memory lent to the pool, and where replicas go.
//
// Each mounted segment is a range [base, base + size) of one member's address space with an
// OffsetAllocator over it. AllocateReplicas places the N replicas of one object on N
// distinct segments (all or nothing); each replica is one contiguous range of its segment.
// Segments are chosen preferred-first (by segment name or hostname, in the caller's order),
// then, with prefer_same_node, those on the writer's host, then most free bytes first.
//
// Freed space can be held back: Release(range, not_before) keeps the range out of every
// allocator until `not_before` (the end of the last read lease on it) and Sweep(now) frees
// what is due. This is how the master guarantees that no region is handed out again while
// a reader may still be copying from it.
//
// A segment mounted again after an unmount is a new generation: releases that name the old
// generation are ignored, so stale frees never reach the new allocator.
//
// Thread-safe: one mutex, held only for the short allocator calls.
//
//   ferry::store::SegmentTable t(64);
//   (void)t.Mount({.id = "s1", .name = "10.0.0.2:17000", .hostname = "10.0.0.2",
//                  .base = 0x7f0000000000, .size = 1 << 30, .client_id = "c1"});
//   auto r = t.AllocateReplicas(4096, 1, {}, "", false);  // one range on s1
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "ferry/status.h"
#include "store/offset_allocator.h"

namespace ferry::store {

struct SegmentInfo {
  std::string id;         // chosen by the member, stable across re-mounts
  std::string name;       // transfer-engine segment name, "host:port"
  std::string hostname;   // the member's host
  uint64_t base = 0;      // address in the member's address space
  uint64_t size = 0;      // bytes
  std::string client_id;  // the member that mounted it
};

// One replica's space: `length` bytes at `address` (absolute, in the member's address
// space) on one segment generation.
struct AllocatedRange {
  // The segment's names, one copy per mounted segment shared by all of its ranges (an
  // object's metadata stays small: 10M objects are 10M ranges).
  struct Names {
    std::string id, name, hostname, client_id;
  };
  std::shared_ptr<const Names> names;
  uint64_t generation = 0;
  uint64_t address = 0;
  uint64_t length = 0;

  const std::string& segment_id() const { return names->id; }
  const std::string& segment_name() const { return names->name; }
  const std::string& hostname() const { return names->hostname; }
  const std::string& client_id() const { return names->client_id; }
};

class SegmentTable {
 public:
  using Clock = std::chrono::steady_clock;

  explicit SegmentTable(uint64_t alignment = 64);

  // Adds a segment. Mounting an identical segment again is OK (idempotent); the same id
  // with other fields, an empty id or name, size 0, or base + size past 2^64 is refused
  // (kInvalidParams / kSegmentAlreadyExists).
  Status Mount(const SegmentInfo& info);

  // Recovery (MasterService::Create): adds a segment known from before a restart as
  // awaiting remount: nothing new is placed on it until a Mount with the same parameters
  // (the member mounting again) clears the mark. Errors as Mount's.
  Status Restore(const SegmentInfo& info);
  // Marks a recorded range of a restored segment used and returns it; kSegmentNotFound for
  // an unknown segment, kInvalidParams for a range outside it or overlapping one in use.
  Result<AllocatedRange> RestoreRange(std::string_view segment_id, uint64_t address,
                                      uint64_t length);
  // The ids of the restored segments not mounted again yet.
  std::vector<std::string> AwaitingRemount() const;
  // Whether `client_id` mounted a restored segment that is not mounted again yet.
  bool AwaitingRemountBy(std::string_view client_id) const;

  // Removes a segment and everything allocated or held on it. kSegmentNotFound if absent.
  Status Unmount(std::string_view id);

  // The ids of every segment `client_id` mounted.
  std::vector<std::string> SegmentsOf(std::string_view client_id) const;

  // N ranges of `length` bytes on N distinct segments, or kNoAvailableHandle (and nothing
  // allocated) when fewer than N segments have room; kInvalidParams for length 0 or N 0.
  Result<std::vector<AllocatedRange>> AllocateReplicas(uint64_t length, size_t replica_num,
                                                       const std::vector<std::string>& preferred,
                                                       std::string_view writer_hostname,
                                                       bool prefer_same_node);

  // Returns a range to its segment now, or at `not_before` when that is later than now.
  // A range of a segment (generation) that is gone is ignored.
  void Release(const AllocatedRange& range, Clock::time_point not_before, Clock::time_point now);

  // Frees every held range whose time has come; returns how many.
  size_t Sweep(Clock::time_point now);

  bool Has(std::string_view id) const;
  // Changes whenever a segment is mounted (not counting idempotent re-mounts) or unmounted.
  uint64_t view_version() const;
  // The current generation of a segment, 0 if it is not mounted.
  uint64_t GenerationOf(std::string_view id) const;
  std::vector<SegmentInfo> List() const;

  struct Totals {
    size_t segments = 0;
    uint64_t capacity = 0;
    uint64_t allocated = 0;       // includes held ranges
    uint64_t held = 0;            // freed but waiting for a lease to end
    size_t awaiting_remount = 0;  // restored segments not mounted again (no new space)
  };
  Totals totals() const;

 private:
  struct Held {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  struct Segment {
    SegmentInfo info;
    std::shared_ptr<const AllocatedRange::Names> names;  // info's, for the ranges
    uint64_t generation = 0;
    std::unique_ptr<OffsetAllocator> allocator;
    std::multimap<Clock::time_point, Held> held;
    uint64_t held_bytes = 0;
    bool awaiting_remount = false;
  };

  const uint64_t alignment_;
  mutable Mutex mu_;
  uint64_t next_generation_ FERRY_GUARDED_BY(mu_) = 1;
  uint64_t view_version_ FERRY_GUARDED_BY(mu_) = 0;
  std::map<std::string, Segment, std::less<>> segments_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::store
