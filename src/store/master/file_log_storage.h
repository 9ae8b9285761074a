// FileLogStorage: a MetadataLog's records and snapshots as files in one directory
// (`ferry master --data_dir DIR`).
//
// Files in DIR (format in docs/store.md):
//   wal.<first seq, 20 digits>  records in sequence order after MetadataLog's log header;
//                               the newest is appended to
//   snapshot                    the state as of one sequence number; replaced atomically
//                               (snapshot.tmp, fsync, rename, fsync DIR)
// Load replays the snapshot and every log; a torn record at the end of the newest log is
// dropped (with a warning) and the file truncated there. Append is one write and one
// fdatasync. Thread-safe (one mutex around the open file).
//
//   ferry::store::RecoveredMetadata state;
//   auto storage = std::make_unique<ferry::store::FileLogStorage>("/var/lib/ferry");
//   auto log = ferry::store::MetadataLog::Open({}, std::move(storage), &state);
#pragma once

#include <string>
#include <string_view>

#include "common/mutex.h"
#include "store/master/log_storage.h"

namespace ferry::store {

class FileLogStorage final : public LogStorage {
 public:
  explicit FileLogStorage(std::string dir) : dir_(std::move(dir)) {}
  ~FileLogStorage() override;

  // Creates DIR if missing. Errors: Unavailable when DIR cannot be made, read or written;
  // DataLoss naming the file and offset for a corrupt file.
  Status Load(RecoveredMetadata* recovered) override;
  Status Append(uint64_t first_seq, uint64_t last_seq, std::string_view records) override;
  Status Rotate(uint64_t first_seq) override;
  Status WriteSnapshot(uint64_t last_seq, std::string_view snapshot) override;
  std::string Describe() const override { return dir_; }

 private:
  Status OpenLogFile(uint64_t first_seq) FERRY_REQUIRES(mu_);

  const std::string dir_;
  Mutex mu_;  // held while writing or switching the file
  int fd_ FERRY_GUARDED_BY(mu_) = -1;
};

}  // namespace ferry::store
