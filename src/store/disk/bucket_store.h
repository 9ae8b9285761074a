// BucketStore: a member's SSD tier. Objects offloaded from the DRAM segment are written to
// the local disk in buckets: one file per WriteBucket call, written once, never modified,
// deleted whole (by DropBucket, or when Remove or a replacement leaves it no live object).
// A copy forgotten while its file stays is named in an append-only tombstone log.
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
//   TOMBSTONES            the dead copies in bucket files that stay (format below)
//   TOMBSTONES.tmp        a compaction of TOMBSTONES being written; removed by Open
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
// Tombstone log format (internal/tombstone_log.h; integers little-endian):
//   header  16 bytes: magic "FERRYTMB" (8) | version u32 (1) | reserved u32 (0)
//   record  bucket id u64 | key length u32 (1..kMaxKeyBytes) | key | XXH3-64 of the
//           record's previous 12 + key length bytes u64
// A record (bucket id, key) kills that key's copy in that bucket only: a later copy of the
// key in a newer bucket is not touched. A record is live while its bucket file exists (ids
// are never reused); Open reads records up to the first bad one (a crash tears only the
// last append), cuts the file there with one warning, and drops what the live ones name.
// When the dead records pass options.tombstone_compact_bytes and outnumber (in bytes) the
// live ones, the log is rewritten with the live ones only (temp file, fdatasync, rename,
// fsync of the directory).
//
// Durability: a bucket is durable when WriteBucket returns (fdatasync of the file, rename,
// fsync of the directory). A Remove or RemoveBatch is durable when it returns: its records
// are appended to TOMBSTONES and fdatasync'ed before the index changes, then emptied bucket
// files are deleted. A replacement appends records for the copies it kills in older buckets
// as part of WriteBucket (the later bucket wins at Open anyway, but the record keeps the
// old copy dead after the new one is removed or dropped); so does a Read that drops a copy.
// If such an append fails (the write itself succeeded), the store notes it and the next
// Remove, RemoveBatch or DropBucket first rewrites the whole log, and fails if it cannot.
// DropBucket deletes the file and fsyncs the directory; it needs no record. Records are
// lost only to corruption of TOMBSTONES (everything after a bad record is ignored).
//
// Thread safety: every method is thread-safe. Reads do not hold the index lock while they
// touch the disk and run concurrently with each other and with writes; a read of a bucket
// that is dropped meanwhile still completes from the open file. Remove, RemoveBatch,
// DropBucket and the last step of WriteBucket (installing its index) are serialized with
// each other, one tombstone append and fdatasync at a time; reads never wait for those.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "store/disk/internal/tombstone_log.h"

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
  // The tombstone log is compacted when its dead records (those naming buckets that are
  // gone) pass this many bytes and the bytes of its live records.
  // Default: 1 MiB.
  uint64_t tombstone_compact_bytes = 1 << 20;
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
    uint64_t bytes = 0;               // bucket file bytes on disk (what capacity limits)
    uint64_t objects = 0;             // live objects
    uint64_t live_bytes = 0;          // sum of live object sizes
    uint64_t buckets = 0;             // bucket files
    uint64_t bucket_writes = 0;       // WriteBucket calls that succeeded since Open
    uint64_t write_bytes = 0;         // bucket file bytes they wrote
    uint64_t reads = 0;               // Read calls that succeeded since Open
    uint64_t read_bytes = 0;          // object bytes they returned
    uint64_t checksum_errors = 0;     // objects dropped for a checksum mismatch, at Open or Read
    uint64_t dropped_at_open = 0;     // bucket files Open found bad or truncated and deleted
    uint64_t tombstones = 0;          // live tombstone records (dead copies in kept files)
    uint64_t tombstone_bytes = 0;     // length of the TOMBSTONES file
    uint64_t tombstone_rewrites = 0;  // compactions of TOMBSTONES since Open (Open's included)
  };

  // Opens (or creates) the store in options.path: takes the directory's lock, removes
  // leftover temp files, checks every bucket file and the checksum of every object (reading
  // each bucket once, sequentially). A bucket whose header, footer or index is bad or which
  // is truncated is deleted (one warning naming it, counted in dropped_at_open); an object
  // whose data fails its checksum is dropped (one warning, counted in checksum_errors). Of
  // two copies of a key the one in the later bucket wins; then the tombstone log is read and
  // the copies it names are dropped (a bad tail of it is cut off, with one warning). A
  // bucket left with no live object is deleted.
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
  // a bucket left with no live object is deleted; the old copy is named in the tombstone log,
  // one append and fdatasync for all of them, whose failure is logged, not returned). It does
  // not evict: call PlanEviction and DropBucket first.
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

  // Forgets the object `key`, durably: a tombstone record is appended and fdatasync'ed
  // first; then a bucket left with no live object is deleted.
  // Errors: NotFound if absent; on an IO error (ResourceExhausted "disk full: ...", Internal
  // naming the path and errno text) the object stays.
  Status Remove(std::string_view key);

  // Remove for many keys with one append and one fdatasync; returns how many were present
  // (absent keys and repeats are skipped). Errors: as Remove (none of the keys is removed).
  Result<size_t> RemoveBatch(std::span<const std::string> keys);

  // The buckets to drop, oldest (lowest id) first, so that a new bucket of `incoming` bytes
  // (its file size: BucketBytes(items)) fits with stats().bytes under capacity. Empty when
  // capacity is 0 or it fits already.
  // Errors: ResourceExhausted when incoming > capacity (dropping every bucket is not enough).
  Result<std::vector<uint64_t>> PlanEviction(uint64_t incoming) const;

  // The live keys of bucket `bucket` (empty if there is no such bucket).
  std::vector<std::string> KeysOf(uint64_t bucket) const;

  // Deletes the bucket's file and forgets its objects (durably: the file is gone; its
  // tombstone records become dead). Reads of it in flight complete.
  // Errors: NotFound if there is no such bucket; Internal naming the path and errno text when
  // a pending rewrite of the tombstone log fails or the file cannot be deleted (the bucket
  // stays either way), or the directory cannot be fsync'ed after the delete (it is gone).
  Status DropBucket(uint64_t bucket);

  Stats stats() const;

 private:
  // An open bucket file, shared by the index and reads in flight (it outlives a drop).
  struct BucketFile;
  struct Bucket {
    std::shared_ptr<BucketFile> file;
    uint64_t file_bytes = 0;
    std::unordered_set<std::string> live_keys;
    std::unordered_set<std::string> tombstones;  // dead copies in the file named in the log
    uint64_t tombstone_bytes = 0;                // their record bytes
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

  using Tombstone = internal::Tombstone;

  Status LoadBuckets();  // Open's scan; before the store is shared
  // Points `key` at `loc` (in a bucket already in buckets_) unless a later bucket holds it;
  // the path of a bucket this leaves with no live object (now forgotten) goes to `emptied`
  // for the caller to unlink, and the copy it kills in another bucket (marked with
  // KillCopyLocked) to `killed` for the caller to log.
  void InstallLocked(const std::string& key, const Location& loc, std::vector<std::string>* emptied,
                     std::vector<Tombstone>* killed) FERRY_REQUIRES(mu_);
  // Forgets the object at `it`; returns the path of its bucket if that is now empty and was
  // forgotten too (the caller unlinks it).
  std::optional<std::string> EraseLocked(ObjectMap::iterator it) FERRY_REQUIRES(mu_);
  // Notes a live tombstone for `key` in the present bucket `bucket`; false if it had one.
  bool KillCopyLocked(uint64_t bucket, const std::string& key) FERRY_REQUIRES(mu_);
  // Forgets the bucket at `it` (its bytes and tombstones); returns its path.
  std::string ForgetBucketLocked(std::map<uint64_t, Bucket>::iterator it) FERRY_REQUIRES(mu_);

  // Makes the log hold every live tombstone: rewrites it when an append was lost
  // (log_stale_) or could not be undone.
  Status SyncLogLocked() FERRY_REQUIRES(log_mu_);
  // Writes `records` (already marked in memory) to the log, rewriting it instead when it is
  // stale; a failure is logged and leaves log_stale_ set.
  void PersistLocked(std::span<const Tombstone> records) FERRY_REQUIRES(log_mu_);
  // Rewrites the log with the live tombstones only.
  Status RewriteLogLocked() FERRY_REQUIRES(log_mu_);
  // RewriteLogLocked when the dead records pass the threshold (a failure is logged only).
  void MaybeCompactLocked() FERRY_REQUIRES(log_mu_);
  std::string BucketPath(uint64_t bucket, bool temp) const;
  Status RecordHighestId(uint64_t id);  // into LOCK

  const BucketStoreOptions options_;
  const UniqueFd lock_fd_;

  // Serializes every change of the index that the tombstone log must follow (Remove,
  // RemoveBatch, DropBucket, the install step of WriteBucket, a Read that drops a copy) and
  // every write of the log. Acquired before mu_, never while holding it.
  Mutex log_mu_;
  std::unique_ptr<internal::TombstoneLog> log_ FERRY_GUARDED_BY(log_mu_);
  bool log_stale_ FERRY_GUARDED_BY(log_mu_) = false;  // live tombstones missing from the file
  std::atomic<uint64_t> log_file_bytes_{0};           // log_->bytes(), for stats()
  std::atomic<uint64_t> log_rewrites_{0};             // rewrites of the log since Open

  mutable Mutex mu_;
  ObjectMap objects_ FERRY_GUARDED_BY(mu_);
  std::map<uint64_t, Bucket> buckets_ FERRY_GUARDED_BY(mu_);  // by id
  uint64_t next_id_ FERRY_GUARDED_BY(mu_) = 1;
  uint64_t bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t live_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t bucket_writes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t write_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t checksum_errors_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t dropped_at_open_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t tombstones_ FERRY_GUARDED_BY(mu_) = 0;            // live tombstone records
  uint64_t tombstone_live_bytes_ FERRY_GUARDED_BY(mu_) = 0;  // their record bytes
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> read_bytes_{0};
};

}  // namespace ferry::store
