// MetadataLog: the store master's write-ahead log and snapshots, and their replay at
// start. The bytes live in a LogStorage (log_storage.h): files in one directory
// (`ferry master --data_dir DIR`, FileLogStorage) or keys in etcd (HA, EtcdLogStorage).
//
// What is logged: every change a client is told succeeded that must survive a restart:
// segment mounts and unmounts, puts started (PutStart: the space handed out, so that a new
// master never hands it out again while the writer may still write), committed objects
// (PutEnd) and removals (Remove, RemoveAll, RemoveByRegex, eviction, upsert, PutRevoke, a
// put released as stale). Leases and pins' deadlines are not.
//
// Every record (format in docs/store.md): u32 payload length, u64 XXH64 of (seq, type,
// payload), u64 seq, u8 type, payload. A snapshot is a file header ("FERRYSNP", u32
// version) and records between a kSnapshotBegin and a kSnapshotEnd; a log file is a header
// ("FERRYWAL") and records. A record that fails its checksum or runs past the end of the
// newest log is a torn tail: it and what follows are dropped (with a warning). The same
// anywhere else, a sequence gap or an unknown type is an error naming where.
//
// Group commit: Append only encodes the record into the pending buffer (under one mutex)
// and returns its sequence number; Sync asks a committer thread to hand everything pending
// to the storage in one LogStorage::Append (one write + fdatasync, or one etcd txn), and
// waits (with a deadline) until every record appended before the call is durable. While one
// commit runs, the next Syncs' records pile up and go in the next one. Records nobody Syncs
// are written within 20 ms. Callers append while holding the lock that orders the change (so
// the log order is the order of the changes), and Sync after dropping it, before they reply.
// After one failed commit the log is broken: every later Sync fails (a fenced HA leader
// stays fenced).
//
// Thread-safe, except Rotate, which needs the caller to keep Append out (the master holds
// its write barrier).
//
//   ferry::store::RecoveredMetadata state;
//   auto log = ferry::store::MetadataLog::Open({.dir = "/var/lib/ferry"}, &state);
//   if (log.ok()) {
//     (*log)->Append(ferry::store::MetadataRecord::Remove("k"));
//     ferry::Status s = (*log)->Sync();  // durable, or the reason it is not
//   }
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "ferry/status.h"
#include "store/master/log_storage.h"
#include "store/master/segment_table.h"

namespace ferry::store {

// One logged change (or one snapshot entry).
struct MetadataRecord {
  enum class Type : uint8_t {
    kMount = 1,          // segment
    kUnmount = 2,        // segment.id; drops its replicas and objects left with none
    kPut = 3,            // key, size, pins, replicas: a committed object
    kRemove = 4,         // key
    kSnapshotBegin = 5,  // size = the last sequence number the snapshot covers
    kSnapshotEnd = 6,    // size = how many records came between begin and end
    kPutStart = 7,       // as kPut, plus writer: a put in progress (its space is taken)
  };
  struct Replica {
    std::string segment_id;
    uint64_t address = 0;  // absolute, in the member's address space
    uint64_t length = 0;   // the allocated (rounded) length
  };
  Type type = Type::kRemove;
  std::string key;
  uint64_t size = 0;
  bool hard_pin = false;
  bool soft_pin = false;
  std::vector<Replica> replicas;
  std::string writer;  // kPutStart: the client writing it
  SegmentInfo segment;

  static MetadataRecord Mount(const SegmentInfo& segment);
  static MetadataRecord Unmount(std::string_view segment_id);
  static MetadataRecord Remove(std::string_view key);
  bool operator==(const MetadataRecord& other) const;
};

// One record read back, and where it was.
struct LoggedRecord {
  uint64_t seq = 0;
  uint64_t offset = 0;  // of the record in its file or value
  MetadataRecord record;
};
// A file's or a value's records read back.
struct ParsedLog {
  std::vector<LoggedRecord> records;
  uint64_t valid_bytes = 0;  // offset just past the last good record
  bool torn_tail = false;    // bytes after valid_bytes were dropped
};

// The state that snapshot + log replay to: what MasterService restores.
struct RecoveredMetadata {
  std::map<std::string, SegmentInfo, std::less<>> segments;    // by id
  std::map<std::string, MetadataRecord, std::less<>> objects;  // kPut/kPutStart by key
  uint64_t last_seq = 0;      // of the last record applied (0: none)
  uint64_t snapshot_seq = 0;  // the snapshot's (0: no snapshot)
  uint64_t log_records = 0;   // records replayed from the logs
  uint64_t log_bytes = 0;     // bytes of log replayed (what the storage holds after the snapshot)
  bool dropped_torn_tail = false;

  // Applies one change (kMount, kUnmount, kPut, kPutStart, kRemove; others are ignored). A
  // put keeps only its replicas on segments mounted at that point (none left: the object
  // goes); an unmount drops a put in progress with a replica there.
  void Apply(const MetadataRecord& record);
  // Applies a snapshot (MetadataLog::EncodeSnapshot's bytes) to an empty state; `where`
  // names it in errors. DataLoss for anything but a complete, intact snapshot.
  Status ApplySnapshot(std::string_view snapshot, const std::string& where);
  // Applies the records of one log after last_seq (those at or before it are covered by the
  // snapshot and skipped), counting them in log_records and `bytes` in log_bytes. DataLoss
  // naming `where` and the offset on a sequence gap.
  Status Replay(const ParsedLog& log, const std::string& where);
};

class MetadataLog {
 public:
  struct Options {
    // The directory (the file storage's); created if missing.
    std::string dir;
    // A snapshot is due after this many records in the logs. Default: 100000.
    uint64_t snapshot_every_records = 100000;
    // ... or this many bytes. Default: 64 MiB.
    uint64_t snapshot_every_bytes = 64ull << 20;
    // The longest Sync waits. Default: 30 s.
    std::chrono::milliseconds sync_timeout{30000};
  };

  // Replays DIR's snapshot and logs into *recovered (a FileLogStorage on options.dir), then
  // opens the newest log for appending. Errors: InvalidArgument without a dir; Unavailable
  // when DIR cannot be made or written; DataLoss naming the file and offset for a corrupt
  // file.
  static Result<std::unique_ptr<MetadataLog>> Open(const Options& options,
                                                   RecoveredMetadata* recovered);
  // The same over any storage (options.dir is not looked at). Errors: the storage's Load.
  static Result<std::unique_ptr<MetadataLog>> Open(const Options& options,
                                                   std::unique_ptr<LogStorage> storage,
                                                   RecoveredMetadata* recovered);
  ~MetadataLog();  // stops the committer after writing what is pending

  MetadataLog(const MetadataLog&) = delete;
  MetadataLog& operator=(const MetadataLog&) = delete;

  // Queues a record; returns its sequence number. Never blocks on I/O.
  uint64_t Append(const MetadataRecord& record);
  // Waits until every record appended before this call is on disk. Internal after a failed
  // write or fdatasync (and from then on: the log is broken), DeadlineExceeded after
  // sync_timeout.
  Status Sync();

  // Whether the logs have grown past the snapshot thresholds.
  bool SnapshotDue() const;
  // Makes everything appended durable and starts a new log file; returns the last sequence
  // number in the old files. REQUIRES: no concurrent Append.
  Result<uint64_t> Rotate();
  // Writes `records` (kMount, kPut, kPutStart) as the snapshot at `last_seq` (from Rotate), then
  // deletes the log files it covers.
  Status WriteSnapshot(uint64_t last_seq, const std::vector<MetadataRecord>& records);

  struct Stats {
    uint64_t commits = 0;  // LogStorage::Append batches
    uint64_t committed_records = 0;
    uint64_t commit_micros = 0;  // sum over commits
    uint64_t max_batch = 0;      // most records in one commit
    uint64_t log_records = 0;    // in the log files now
    uint64_t log_bytes = 0;
    uint64_t snapshots = 0;    // written by this process
    uint64_t durable_seq = 0;  // the last durable record's sequence number (log position)
    // Cumulative histograms (Prometheus `le` buckets) over commits.
    std::array<uint64_t, 8> commit_buckets{};  // latency <= kCommitBucketsUs[i]
    std::array<uint64_t, 7> batch_buckets{};   // records <= kBatchBuckets[i]
  };
  static constexpr std::array<uint64_t, 8> kCommitBucketsUs = {100,   500,   1000,   2500,
                                                               10000, 50000, 250000, 1000000};
  static constexpr std::array<uint64_t, 7> kBatchBuckets = {1, 4, 16, 64, 256, 1024, 8192};
  Stats stats() const;
  std::string Describe() const { return storage_->Describe(); }
  // OK, or the failure that broke the log.
  Status health() const;

  // The wire form of one record.
  static std::string Encode(uint64_t seq, const MetadataRecord& record);
  // The bytes of a snapshot of `records` (kMount, kPut, kPutStart) covering up to last_seq.
  static std::string EncodeSnapshot(uint64_t last_seq, const std::vector<MetadataRecord>& records);
  // The header a log file starts with ("FERRYWAL", version) and its size.
  static std::string LogFileHeader();
  static constexpr size_t kFileHeaderBytes = 12;
  // Records read back from `data`: a log or snapshot with its header (`magic` "FERRYWAL" or
  // "FERRYSNP"), or, with an empty `magic`, bare records (an etcd value). With
  // `allow_torn_tail`, a bad last record is reported as torn_tail, else DataLoss naming
  // `where` and the offset.
  static Result<ParsedLog> Parse(std::string_view data, std::string_view magic,
                                 const std::string& where, bool allow_torn_tail);
  // Parse of a whole file.
  static Result<ParsedLog> ReadFile(const std::string& path, std::string_view magic,
                                    bool allow_torn_tail);
  // The size of the record at the start of `data` and its sequence number; false when
  // `data` does not start with a whole record header. For storages that split batches.
  static bool PeekRecord(std::string_view data, size_t* size, uint64_t* seq);

 private:
  MetadataLog(Options options, std::unique_ptr<LogStorage> storage);
  void CommitLoop();

  const Options options_;
  const std::unique_ptr<LogStorage> storage_;

  mutable Mutex mu_;
  CondVar work_cv_;  // something pending, or stopping
  CondVar done_cv_;  // durable_seq_ or failed_ changed
  std::string pending_ FERRY_GUARDED_BY(mu_);
  uint64_t next_seq_ FERRY_GUARDED_BY(mu_) = 1;
  uint64_t durable_seq_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t wanted_seq_ FERRY_GUARDED_BY(mu_) = 0;  // the highest seq a Sync waits for
  uint64_t pending_records_ FERRY_GUARDED_BY(mu_) = 0;
  Status failed_ FERRY_GUARDED_BY(mu_);
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  Stats stats_ FERRY_GUARDED_BY(mu_);
  std::thread committer_;
};

}  // namespace ferry::store
