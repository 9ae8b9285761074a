// BucketStore: a member's SSD tier. Objects offloaded from the DRAM segment are written to
// the local disk in buckets: one file per WriteBucket call, written once, never modified,
// deleted whole (by DropBucket, or when Remove or a replacement leaves it no live object).
//
//   FERRY_ASSIGN_OR_RETURN(auto store, ferry::store::BucketStore::Open({.path = "/ssd/ferry"}));
//   std::vector<ferry::store::BucketStore::WriteItem> items = ...;  // key + byte spans
//   FERRY_ASSIGN_OR_RETURN(auto victims,
//                          store->PlanEviction(ferry::store::BucketStore::BucketBytes(items)));
//   for (uint64_t b : victims) FERRY_RETURN_IF_ERROR(store->DropBucket(b));
//   FERRY_ASSIGN_OR_RETURN(uint64_t bucket, store->WriteBucket(items));
//   FERRY_ASSIGN_OR_RETURN(size_t n, store->Read("key", buffer, buffer_capacity));
//
// Files in the directory:
//   LOCK                  flock'ed by the one open store; holds the highest bucket id handed
//                         out (decimal), so that ids keep increasing when every bucket is gone
//   bucket.<id, 20 digits>        a bucket (format below)
//   bucket.<id, 20 digits>.tmp    a bucket being written; removed by Open (a crash mid-write)
//
// Bucket file format (all integers little-endian; offsets are from the start of the file):
//   header  kHeaderBytes (4096) bytes:
//             magic "FERRYBKT" (8) | version u32 (1) | reserved u32 (0) | bucket id u64 |
//             creation time u64 (ns since the Unix epoch) | XXH3-64 of the previous 32 bytes
//             u64 | zero padding to 4096
//   data    each object's bytes, starting at an offset that is a multiple of kAlignment
//           (4096, so O_DIRECT reads work), followed by zero padding to the next multiple
//   index   starts at a multiple of kAlignment; per object, in file order:
//             key length u32 (1..kMaxKeyBytes) | key | offset u64 | length u64 |
//             XXH3-64 of the object's bytes u64
//   footer  kFooterBytes (40) bytes, the file's last:
//             index offset u64 | index length u64 | entry count u64 | XXH3-64 of the index
//             u64 | magic "FERRYBKF" (8)
// Nothing read from a file is trusted: Open checks every size against the file's length and
// the limits below before it allocates or reads (an index is at most kMaxIndexBytes, a bucket
// holds at most kMaxObjects objects, entries are in file order and do not overlap).
//
// Durability: a bucket is durable when WriteBucket returns (fdatasync of the file, rename,
// fsync of the directory). Remove, replacement and DropBucket only change the index in memory
// and delete files: a removed or replaced object whose bucket still holds other live objects
// is back after a reopen, unless a later bucket holds the same key (the later bucket wins).
//
// Thread safety: every method is thread-safe. Reads do not hold the index lock while they
// touch the disk and run concurrently with each other and with writes; a read of a bucket
// that is dropped meanwhile still completes from the open file.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/unique_fd.h"
#include "ferry/status.h"

namespace ferry::store {

struct BucketStoreOptions {
  // The directory of the store; created (with its parents) if missing. One store per
  // directory: a second Open of a directory that is open fails FailedPrecondition.
  // Required (no default).
  std::string path;
  // Bytes of bucket files (their full size on disk, BucketBytes) the store may keep; only
  // PlanEviction looks at it, WriteBucket never refuses for it. 0 = no limit.
  // Default: 0.
  uint64_t capacity = 0;
  // Read with O_DIRECT (bypassing the page cache) where the destination buffer is 4096-byte
  // aligned: the 4096-aligned prefix of an object is read directly, the rest buffered. A
  // file system without O_DIRECT (tmpfs) falls back to buffered reads.
  // Default: false.
  bool direct_io = false;
};

// One live object on disk.
struct DiskObject {
  std::string key;
  uint64_t size = 0;    // bytes of the object
  uint64_t bucket = 0;  // the bucket that holds it
};

class BucketStore {
 public:
  static constexpr uint64_t kAlignment = 4096;          // object data offsets are multiples
  static constexpr uint64_t kHeaderBytes = 4096;        // header, padded to kAlignment
  static constexpr uint64_t kFooterBytes = 40;          // footer at the file's end
  static constexpr size_t kMaxKeyBytes = 4096;          // longest key
  static constexpr size_t kMaxObjects = 1 << 20;        // objects in one bucket
  static constexpr uint64_t kMaxIndexBytes = 64 << 20;  // bytes of one bucket's index
  static constexpr uint64_t kIndexEntryFixedBytes = 4 + 8 + 8 + 8;  // an entry less its key

  // One object to write: its bytes are `parts` concatenated (the spans are only read during
  // WriteBucket; the caller keeps ownership).
  struct WriteItem {
    std::string key;
    std::vector<std::span<const std::byte>> parts;
  };

  struct Stats {
    uint64_t bytes = 0;            // bucket file bytes on disk (what capacity limits)
    uint64_t objects = 0;          // live objects
    uint64_t live_bytes = 0;       // sum of live object sizes
    uint64_t buckets = 0;          // bucket files
    uint64_t bucket_writes = 0;    // WriteBucket calls that succeeded since Open
    uint64_t write_bytes = 0;      // bucket file bytes they wrote
    uint64_t reads = 0;            // Read calls that succeeded since Open
    uint64_t read_bytes = 0;       // object bytes they returned
    uint64_t checksum_errors = 0;  // objects dropped for a checksum mismatch, at Open or Read
    uint64_t dropped_at_open = 0;  // bucket files Open found bad or truncated and deleted
  };

  // Opens (or creates) the store in options.path: takes the directory's lock, removes
  // leftover temp files, checks every bucket file and the checksum of every object (reading
  // each bucket once, sequentially). A bucket whose header, footer or index is bad or which
  // is truncated is deleted (one warning naming it, counted in dropped_at_open); an object
  // whose data fails its checksum is dropped (one warning, counted in checksum_errors). Of
  // two copies of a key the one in the later bucket wins.
  // Errors: InvalidArgument for an empty path, FailedPrecondition when another store holds
  // the directory, Internal naming the path and errno text when it cannot be created or read.
  static Result<std::unique_ptr<BucketStore>> Open(const BucketStoreOptions& options);

  ~BucketStore();
  BucketStore(const BucketStore&) = delete;
  BucketStore& operator=(const BucketStore&) = delete;

  // The size on disk of a bucket file holding `items` (header, aligned data, index, footer):
  // what to pass to PlanEviction before WriteBucket(items).
  static uint64_t BucketBytes(std::span<const WriteItem> items);
  // The same from object sizes and the sum of their key lengths.
  static uint64_t BucketBytes(std::span<const uint64_t> sizes, uint64_t total_key_bytes);

  // The live objects, in no particular order.
  std::vector<DiskObject> List() const;

  // Writes one new bucket holding `items` (one sequential pwritev of header, data, index and
  // footer to a temp file, fdatasync, rename, fsync of the directory) and returns its id
  // (increasing, also across reopens). All or nothing: on failure no file of it remains and
  // the store is unchanged. A key already stored is replaced (its old copy becomes dead, and
  // a bucket left with no live object is deleted). It does not evict: call PlanEviction and
  // DropBucket first.
  // Errors: InvalidArgument for no items, an empty or too long key (kMaxKeyBytes), a key
  // twice in `items`, more than kMaxObjects items or an index over kMaxIndexBytes;
  // ResourceExhausted("disk full: ...") on ENOSPC or EDQUOT; Internal naming the path and the
  // errno text on other IO errors.
  Result<uint64_t> WriteBucket(std::span<const WriteItem> items);

  // Copies the object `key` into dst (dst holds `capacity` bytes, and only the object's
  // first size bytes of it are written) and returns its size. Verifies its checksum.
  // Errors: NotFound if absent; InvalidArgument if capacity < size; DataLoss("checksum
  // mismatch ...") when the bytes read fail the checksum, counted in checksum_errors, and
  // DataLoss when the file is shorter than its index says: either way the object is dropped;
  // Internal naming the file and errno text on an IO error (the object stays). dst's
  // contents are unspecified after an error.
  Result<size_t> Read(std::string_view key, void* dst, size_t capacity);

  // The size of the live object `key`, or nullopt if absent.
  std::optional<uint64_t> SizeOf(std::string_view key) const;

  // Forgets the object `key`; a bucket left with no live object is deleted.
  // Errors: NotFound if absent.
  Status Remove(std::string_view key);

  // The buckets to drop, oldest (lowest id) first, so that a new bucket of `incoming` bytes
  // (its file size: BucketBytes(items)) fits with stats().bytes under capacity. Empty when
  // capacity is 0 or it fits already.
  // Errors: ResourceExhausted when incoming > capacity (dropping every bucket is not enough).
  Result<std::vector<uint64_t>> PlanEviction(uint64_t incoming) const;

  // The live keys of bucket `bucket` (empty if there is no such bucket).
  std::vector<std::string> KeysOf(uint64_t bucket) const;

  // Deletes the bucket's file and forgets its objects. Reads of it in flight complete.
  // Errors: NotFound if there is no such bucket.
  Status DropBucket(uint64_t bucket);

  Stats stats() const;

 private:
  // An open bucket file, shared by the index and reads in flight (it outlives a drop).
  struct BucketFile;
  struct Bucket {
    std::shared_ptr<BucketFile> file;
    uint64_t file_bytes = 0;
    std::unordered_set<std::string> live_keys;
  };
  // Keys looked up by string_view without a copy.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  struct Location {
    uint64_t bucket = 0;
    uint64_t offset = 0;  // of the data in the bucket file
    uint64_t size = 0;
    uint64_t checksum = 0;  // XXH3-64 of the data
  };
  using ObjectMap = std::unordered_map<std::string, Location, KeyHash, std::equal_to<>>;

  BucketStore(BucketStoreOptions options, UniqueFd lock_fd);

  Status LoadBuckets();  // Open's scan; before the store is shared
  // Points `key` at `loc` (in a bucket already in buckets_) unless a later bucket holds it;
  // the path of a bucket this leaves with no live object (now forgotten) goes to `emptied`
  // for the caller to unlink. REQUIRES mu_.
  void InstallLocked(const std::string& key, const Location& loc,
                     std::vector<std::string>* emptied);
  // Forgets the object at `it`; returns the path of its bucket if that is now empty and was
  // forgotten too (the caller unlinks it). REQUIRES mu_.
  std::optional<std::string> EraseLocked(ObjectMap::iterator it);
  std::string BucketPath(uint64_t bucket, bool temp) const;
  Status RecordHighestId(uint64_t id);  // into LOCK

  const BucketStoreOptions options_;
  const UniqueFd lock_fd_;

  mutable std::mutex mu_;
  ObjectMap objects_;                   // GUARDED_BY(mu_)
  std::map<uint64_t, Bucket> buckets_;  // GUARDED_BY(mu_), by id
  uint64_t next_id_ = 1;                // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;                  // GUARDED_BY(mu_)
  uint64_t live_bytes_ = 0;             // GUARDED_BY(mu_)
  uint64_t bucket_writes_ = 0;          // GUARDED_BY(mu_)
  uint64_t write_bytes_ = 0;            // GUARDED_BY(mu_)
  uint64_t checksum_errors_ = 0;        // GUARDED_BY(mu_)
  uint64_t dropped_at_open_ = 0;        // GUARDED_BY(mu_)
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> read_bytes_{0};
};

}  // namespace ferry::store
