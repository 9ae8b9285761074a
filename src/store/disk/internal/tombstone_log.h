// TombstoneLog: the SSD tier's append-only record of dead object copies (the file
// TOMBSTONES in a BucketStore's directory). Bucket files are never modified, so a copy the
// store forgets (Remove, a replacement, a failed read) while its bucket file stays is named
// here, and BucketStore::Open drops it again. Private to BucketStore, which decides which
// records are live and serializes every call.
//
//   FERRY_ASSIGN_OR_RETURN(auto log, TombstoneLog::Open(dir + "/TOMBSTONES",
//       [&](uint64_t bucket, std::string_view key) { ... }));
//   std::vector<Tombstone> dead = {{bucket, "key"}};
//   FERRY_RETURN_IF_ERROR(log->Append(dead));  // durable when it returns
//
// File format (integers little-endian):
//   header  kHeaderBytes (16): magic "FERRYTMB" (8) | version u32 (1) | reserved u32 (0)
//   records, appended: bucket id u64 | key length u32 (1..kMaxKeyBytes) | key |
//           XXH3-64 of the record's previous 12 + key length bytes u64
// A record is valid when its key length is in range and its checksum matches. Reading stops
// at the first invalid or incomplete record (a crash mid-append tears only the last one).
//
// Thread safety: none; the owner serializes all calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/unique_fd.h"
#include "ferry/status.h"

namespace ferry::store::internal {

// The copy of `key` in bucket `bucket` is dead.
struct Tombstone {
  uint64_t bucket = 0;
  std::string key;
};

class TombstoneLog {
 public:
  static constexpr uint64_t kHeaderBytes = 16;
  static constexpr uint64_t kRecordFixedBytes = 8 + 4 + 8;  // a record less its key
  static constexpr size_t kMaxKeyBytes = 4096;              // BucketStore::kMaxKeyBytes
  // Records Open reads at most; the rest is ignored (one warning). A store holding this many
  // dead copies in live buckets compacts long before (BucketStore keeps only live records).
  static constexpr uint64_t kMaxRecords = uint64_t{1} << 26;

  // The bytes of one record with a key of `key_bytes` bytes.
  static constexpr uint64_t RecordBytes(size_t key_bytes) { return kRecordFixedBytes + key_bytes; }

  // Opens the log at `path`, creating it (header only, fdatasync'ed) if missing, and calls
  // `visit` for every valid record in file order. Nothing read is trusted: a bad header, a
  // key length out of range, a checksum mismatch or a cut record ends the reading; the file
  // is then cut back to its valid part (a bad header: to a fresh header) so that appends
  // follow valid records, with one warning naming the path and the bytes dropped, returned
  // in *ignored_bytes. Errors: Internal naming the path and errno text when the file cannot
  // be opened, read or repaired.
  static Result<std::unique_ptr<TombstoneLog>> Open(
      const std::string& path, const std::function<void(uint64_t, std::string_view)>& visit,
      uint64_t* ignored_bytes = nullptr);

  ~TombstoneLog();
  TombstoneLog(const TombstoneLog&) = delete;
  TombstoneLog& operator=(const TombstoneLog&) = delete;

  // Appends `records` with one write and one fdatasync; durable when it returns OK. On
  // failure the file is cut back to its previous length; if even that fails, broken() is
  // true and only Rewrite may follow. Errors: InvalidArgument for a key of 0 or more than
  // kMaxKeyBytes bytes (nothing written); FailedPrecondition when broken(); ResourceExhausted
  // ("disk full: ...") on ENOSPC or EDQUOT; Internal naming the path and errno text otherwise.
  Status Append(std::span<const Tombstone> records);

  // Replaces the file with one holding only `records`: a temp file (path + ".tmp") written,
  // fdatasync'ed, renamed over the log, and the directory fsync'ed. On failure the old file
  // stays as it was (broken() unchanged). Errors: as Append.
  Status Rewrite(std::span<const Tombstone> records);

  uint64_t bytes() const { return bytes_; }  // the file's length (header included)
  bool broken() const { return broken_; }    // an append failed and could not be undone

 private:
  TombstoneLog(std::string path, UniqueFd fd, uint64_t bytes);

  const std::string path_;
  UniqueFd fd_;
  uint64_t bytes_ = 0;
  bool broken_ = false;
};

}  // namespace ferry::store::internal
