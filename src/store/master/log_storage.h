// LogStorage: where a MetadataLog keeps its records and snapshots. MetadataLog does the
// encoding, the ordering and the group commit; a LogStorage only makes bytes durable and
// reads them back. Two exist: FileLogStorage (`--data_dir`, files in one directory) and
// EtcdLogStorage (HA: keys in etcd, every write fenced by the writer's leadership).
//
// Contract for implementations:
// - Load runs once, first. It replays the snapshot and the logs into *recovered with
//   RecoveredMetadata::ApplySnapshot / Replay (which count log_records and log_bytes), and
//   leaves the storage ready to append the
//   record after recovered->last_seq.
// - Append makes `records` (MetadataLog::Encode'd, sequence numbers first_seq..last_seq,
//   consecutive) durable before it returns OK. It is called from one thread at a time, in
//   sequence order. After a failed Append the MetadataLog never calls it again.
// - Rotate(first_seq) starts a new log at first_seq; everything before it has been
//   appended. WriteSnapshot(last_seq, bytes) replaces the snapshot with one covering every
//   record up to last_seq (from Rotate) and then drops the logs it covers. A crash at any
//   point leaves either the old snapshot and its logs, or the new one.
// - Rotate and WriteSnapshot may run on another thread than Append; implementations lock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::store {

struct RecoveredMetadata;

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // Errors: DataLoss naming where (file and offset, or key) for corrupt data; Unavailable
  // when the storage cannot be read.
  virtual Status Load(RecoveredMetadata* recovered) = 0;
  virtual Status Append(uint64_t first_seq, uint64_t last_seq, std::string_view records) = 0;
  virtual Status Rotate(uint64_t first_seq) = 0;
  virtual Status WriteSnapshot(uint64_t last_seq, std::string_view snapshot) = 0;

  // For log lines: "/var/lib/ferry", "etcd://127.0.0.1:2379 /ferry/store/c1/".
  virtual std::string Describe() const = 0;
};

}  // namespace ferry::store
