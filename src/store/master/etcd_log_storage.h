// EtcdLogStorage: a MetadataLog's records and checkpoints in etcd, for HA masters. Every
// write is fenced: it is a transaction that only applies while the leader key still has
// the create revision this master won it with, so a deposed leader (its lease lost while
// it was paused or cut off) can never add to the log, even if it has not noticed yet.
//
// Keys under `prefix` (e.g. "/ferry/store/<cluster_id>/"; format in docs/store.md):
//   log/<first seq, 20 digits>         records (MetadataLog::Encode) in sequence order; one
//                                      commit is one or more such values of at most
//                                      max_value_bytes, split at record boundaries
//   checkpoint                         "<last seq> <chunks> <bytes> <xxh64 hex>": the
//                                      current checkpoint (a MetadataLog snapshot)
//   checkpoint/<last seq>/<chunk, 8>   its bytes in chunks of at most max_value_bytes
// A checkpoint is written chunk by chunk, then one transaction points `checkpoint` at it and
// deletes the log values and the older checkpoint it replaces; then etcd's history before
// that revision is compacted (etcd keeps every old revision until compacted). Load reads
// everything at one revision, in pages. etcd refuses requests over --max-request-bytes
// (1.5 MiB by default): max_value_bytes and max_txn_bytes stay well below it, after base64.
//
// Thread-safe (Append, Rotate and WriteSnapshot serialize on one mutex).
//
//   auto etcd = std::shared_ptr<ferry::metadata::EtcdClient>(
//       ferry::metadata::EtcdClient::Create("127.0.0.1:2379").value());
//   ferry::store::EtcdLogStorage::Options o;
//   o.prefix = "/ferry/store/c1/";
//   o.fence_key = "/ferry/store/c1/leader";
//   o.fence_revision = 42;  // LeaderElection::Campaign's term
//   auto storage = std::make_unique<ferry::store::EtcdLogStorage>(etcd, o);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "metadata/etcd_client.h"
#include "store/master/log_storage.h"

namespace ferry::store {

class EtcdLogStorage final : public LogStorage {
 public:
  struct Options {
    std::string prefix;                       // required; ends in '/'
    std::string fence_key;                    // "" = unfenced (tests)
    int64_t fence_revision = 0;               // the fence key's create revision while we lead
    std::chrono::milliseconds timeout{5000};  // per etcd call
    size_t max_value_bytes = 512 << 10;
    size_t max_txn_bytes = 768 << 10;
    bool compact = true;  // compact etcd's history after a checkpoint
  };

  EtcdLogStorage(std::shared_ptr<metadata::EtcdClient> etcd, Options options);

  // Errors: DataLoss naming the key for a corrupt value or checkpoint; Unavailable or
  // DeadlineExceeded when etcd does not answer.
  Status Load(RecoveredMetadata* recovered) override;
  // FailedPrecondition when the fence no longer holds (another master leads now).
  Status Append(uint64_t first_seq, uint64_t last_seq, std::string_view records) override;
  Status Rotate(uint64_t) override { return OkStatus(); }
  Status WriteSnapshot(uint64_t last_seq, std::string_view snapshot) override;
  std::string Describe() const override;

  // The key of the log value that starts at `first_seq`.
  std::string LogKey(uint64_t first_seq) const;

 private:
  // Writes `puts` in fenced transactions of at most max_txn_bytes (plus `extra` ops in the
  // last one); returns the revision of the last.
  Result<int64_t> PutFenced(std::vector<metadata::EtcdOp> puts,
                            std::vector<metadata::EtcdOp> extra);
  // Every key with `prefix`, in key order, read at `revision` (0: newest; set to the
  // revision read at).
  Result<std::vector<metadata::EtcdKeyValue>> ReadAll(const std::string& prefix, int64_t* revision);
  Deadline NextDeadline() const;

  const std::shared_ptr<metadata::EtcdClient> etcd_;
  const Options options_;
  Mutex mu_;
  uint64_t checkpoint_seq_ FERRY_GUARDED_BY(mu_) = 0;  // the current checkpoint's (0: none)
};

}  // namespace ferry::store
