// Value types shared by the store's client, master and bindings.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::store {

// How many copies of an object to keep and where (Mooncake's ReplicateConfig).
struct ReplicateConfig {
  // Copies, each on a different segment. Default: 1.
  size_t replica_num = 1;
  // A soft-pinned object is evicted only after unpinned ones (and never when the master
  // runs with --allow_evict_soft_pinned_objects=false) until its pin's TTL passes.
  bool with_soft_pin = false;
  // The soft pin's TTL; 0 takes the master's --default_kv_soft_pin_ttl. Default: 0.
  std::chrono::milliseconds soft_pin_ttl{0};
  // A hard-pinned object is never evicted (only Remove takes it). Default: false.
  bool with_hard_pin = false;
  // Segment names ("host:port") or hostnames tried first, in order. Default: none.
  std::vector<std::string> preferred_segments;
  // Try segments on this client's host first. Default: false.
  bool prefer_alloc_in_same_node = false;
  // Accepted for Mooncake compatibility; no effect yet.
  std::vector<std::string> group_ids;
};

// kDisk is Mooncake's shared-file-system tier, which Ferry never hands out; kLocalDisk is the
// SSD tier: a copy on one member's local disk, read through that member.
enum class ReplicaTier : uint8_t { kMemory = 0, kDisk = 1, kLocalDisk = 2 };
enum class ReplicaStatus : uint8_t { kProcessing = 0, kComplete = 1 };

// A contiguous range of a member's segment.
struct BufferDescriptor {
  std::string segment_name;  // the member's transfer-engine segment name, "host:port"
  uint64_t address = 0;
  uint64_t length = 0;
};

// Where one copy of an object lives.
struct ReplicaDescriptor {
  ReplicaTier tier = ReplicaTier::kMemory;
  ReplicaStatus status = ReplicaStatus::kComplete;
  std::string segment_id;
  std::string hostname;
  std::vector<BufferDescriptor> buffers;  // memory: the bytes in order
  std::string disk_owner;                 // local disk: the owning member's segment name
  uint64_t disk_size = 0;
  std::string disk_rpc_address;  // local disk: the owner's Member service

  bool is_memory_replica() const { return tier == ReplicaTier::kMemory; }
  bool is_disk_replica() const { return tier == ReplicaTier::kDisk; }
  bool is_local_disk_replica() const { return tier == ReplicaTier::kLocalDisk; }
};

// Whether [addr, addr + length) lies inside [base, base + size), without overflow: how a
// member checks a range someone else named in its own segment.
inline bool RangeWithin(uint64_t base, uint64_t size, uint64_t addr, uint64_t length) {
  return addr >= base && addr - base <= size && length <= size - (addr - base);
}

// One piece of a scatter-gather object: registered memory of this process.
struct Piece {
  void* addr = nullptr;
  size_t length = 0;
};

// Whether a put of an existing key keeps the old value (first writer wins) or replaces it.
enum class PutMode : uint8_t { kInsert = 0, kUpsert = 1 };

}  // namespace ferry::store
