#include "store/master/etcd_log_storage.h"

#include <xxhash.h>

#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <utility>

#include "common/log.h"
#include "common/mutex.h"
#include "store/master/metadata_log.h"

namespace ferry::store {
namespace {

using metadata::EtcdClient;
using metadata::EtcdCompare;
using metadata::EtcdKeyValue;
using metadata::EtcdOp;
using metadata::EtcdTxn;

// Base64 grows a value by 4/3; the rest of a request is small.
size_t EncodedBytes(const EtcdOp& op) { return (op.key.size() + op.value.size()) * 4 / 3 + 64; }

std::string Digits(uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*" PRIu64, width, v);
  return buf;
}

struct Manifest {
  uint64_t last_seq = 0;
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  uint64_t sum = 0;
};

std::string EncodeManifest(const Manifest& m) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64 " %" PRIu64 " %016" PRIx64, m.last_seq,
                m.chunks, m.bytes, m.sum);
  return buf;
}

bool DecodeManifest(const std::string& text, Manifest* m) {
  std::istringstream in(text);
  std::string sum;
  if (!(in >> m->last_seq >> m->chunks >> m->bytes >> sum) || sum.size() != 16) return false;
  char* end = nullptr;
  m->sum = std::strtoull(sum.c_str(), &end, 16);
  std::string rest;
  return end == sum.c_str() + 16 && !(in >> rest) && m->chunks <= (1u << 20);
}

}  // namespace

EtcdLogStorage::EtcdLogStorage(std::shared_ptr<EtcdClient> etcd, Options options)
    : etcd_(std::move(etcd)), options_(std::move(options)) {}

std::string EtcdLogStorage::Describe() const { return etcd_->Describe() + " " + options_.prefix; }

std::string EtcdLogStorage::LogKey(uint64_t first_seq) const {
  return options_.prefix + "log/" + Digits(first_seq, 20);
}

Deadline EtcdLogStorage::NextDeadline() const { return Deadline::In(options_.timeout); }

Result<std::vector<EtcdKeyValue>> EtcdLogStorage::ReadAll(const std::string& prefix,
                                                          int64_t* revision) {
  constexpr int64_t kPage = 16;  // values are at most max_value_bytes each: <= 8 MiB a page
  std::vector<EtcdKeyValue> out;
  const std::string end = EtcdClient::PrefixEnd(prefix);
  std::string from = prefix;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(metadata::EtcdRange page,
                           etcd_->Range(from, end, kPage, NextDeadline(), *revision));
    if (*revision == 0) *revision = page.revision;
    for (EtcdKeyValue& kv : page.kvs) out.push_back(std::move(kv));
    if (!page.more || out.empty()) return out;
    from = out.back().key + std::string(1, '\0');
  }
}

Status EtcdLogStorage::Load(RecoveredMetadata* recovered) {
  MutexLock lock(&mu_);
  int64_t revision = 0;
  const std::string manifest_key = options_.prefix + "checkpoint";
  FERRY_ASSIGN_OR_RETURN(metadata::EtcdRange head,
                         etcd_->Range(manifest_key, "", 1, NextDeadline(), revision));
  revision = head.revision;
  if (!head.kvs.empty()) {
    Manifest m;
    if (!DecodeManifest(head.kvs.front().value, &m)) {
      return DataLossError("etcd key " + manifest_key + ": not a checkpoint manifest ('" +
                           head.kvs.front().value.substr(0, 100) + "')");
    }
    const std::string chunk_prefix = manifest_key + "/" + Digits(m.last_seq, 20) + "/";
    FERRY_ASSIGN_OR_RETURN(std::vector<EtcdKeyValue> chunks, ReadAll(chunk_prefix, &revision));
    std::string data;
    for (const EtcdKeyValue& kv : chunks) data += kv.value;
    if (chunks.size() != m.chunks || data.size() != m.bytes ||
        XXH64(data.data(), data.size(), 0) != m.sum) {
      return DataLossError("etcd checkpoint " + chunk_prefix + ": " +
                           std::to_string(chunks.size()) + " chunk(s) of " +
                           std::to_string(data.size()) + " bytes, the manifest says " +
                           std::to_string(m.chunks) + " of " + std::to_string(m.bytes) +
                           " (or the checksum differs)");
    }
    FERRY_RETURN_IF_ERROR(recovered->ApplySnapshot(data, "etcd checkpoint " + chunk_prefix));
    checkpoint_seq_ = m.last_seq;
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<EtcdKeyValue> logs,
                         ReadAll(options_.prefix + "log/", &revision));
  for (const EtcdKeyValue& kv : logs) {
    const std::string where = "etcd key " + kv.key;
    FERRY_ASSIGN_OR_RETURN(ParsedLog log, MetadataLog::Parse(kv.value, "", where, false));
    FERRY_RETURN_IF_ERROR(recovered->Replay(log, where));
  }
  return OkStatus();
}

Result<int64_t> EtcdLogStorage::PutFenced(std::vector<EtcdOp> puts, std::vector<EtcdOp> extra) {
  int64_t revision = 0;
  size_t i = 0;
  do {
    EtcdTxn txn;
    if (!options_.fence_key.empty()) {
      txn.compares.push_back(EtcdCompare::CreateRevision(options_.fence_key, EtcdCompare::kEqual,
                                                         options_.fence_revision));
    }
    size_t bytes = 0;
    while (i < puts.size() &&
           (txn.success.empty() || bytes + EncodedBytes(puts[i]) <= options_.max_txn_bytes)) {
      bytes += EncodedBytes(puts[i]);
      txn.success.push_back(std::move(puts[i++]));
    }
    if (i == puts.size()) {
      for (EtcdOp& op : extra) txn.success.push_back(std::move(op));
    }
    FERRY_ASSIGN_OR_RETURN(metadata::EtcdTxnResult r, etcd_->Txn(txn, NextDeadline()));
    if (!r.succeeded) {
      return FailedPreconditionError("fenced: " + options_.fence_key +
                                     " is no longer held at revision " +
                                     std::to_string(options_.fence_revision) +
                                     " (this master lost its lease; another master leads now)");
    }
    revision = r.revision;
  } while (i < puts.size());
  return revision;
}

Status EtcdLogStorage::Append(uint64_t first_seq, uint64_t last_seq, std::string_view records) {
  MutexLock lock(&mu_);
  std::vector<EtcdOp> puts;
  uint64_t piece_seq = first_seq;
  size_t piece_start = 0;
  size_t off = 0;
  while (off < records.size()) {
    size_t size = 0;
    uint64_t seq = 0;
    if (!MetadataLog::PeekRecord(records.substr(off), &size, &seq) || size > records.size() - off) {
      return InternalError("etcd log: a malformed batch at offset " + std::to_string(off));
    }
    if (off > piece_start && off - piece_start + size > options_.max_value_bytes) {
      puts.push_back(EtcdOp::Put(LogKey(piece_seq),
                                 std::string(records.substr(piece_start, off - piece_start))));
      piece_start = off;
      piece_seq = seq;
    }
    off += size;
  }
  if (off > piece_start) {
    puts.push_back(EtcdOp::Put(LogKey(piece_seq),
                               std::string(records.substr(piece_start, off - piece_start))));
  }
  (void)last_seq;
  return PutFenced(std::move(puts), {}).status();
}

Status EtcdLogStorage::WriteSnapshot(uint64_t last_seq, std::string_view snapshot) {
  MutexLock lock(&mu_);
  const std::string manifest_key = options_.prefix + "checkpoint";
  const std::string chunk_prefix = manifest_key + "/" + Digits(last_seq, 20) + "/";
  Manifest m;
  m.last_seq = last_seq;
  m.bytes = snapshot.size();
  m.sum = XXH64(snapshot.data(), snapshot.size(), 0);
  std::vector<EtcdOp> chunks;
  for (size_t off = 0; off < snapshot.size(); off += options_.max_value_bytes) {
    chunks.push_back(EtcdOp::Put(chunk_prefix + Digits(m.chunks++, 8),
                                 std::string(snapshot.substr(off, options_.max_value_bytes))));
  }
  FERRY_RETURN_IF_ERROR(PutFenced(std::move(chunks), {}).status());
  // One transaction switches to the new checkpoint and drops what it covers.
  std::vector<EtcdOp> done;
  done.push_back(EtcdOp::Put(manifest_key, EncodeManifest(m)));
  done.push_back(EtcdOp::Delete(options_.prefix + "log/", LogKey(last_seq + 1)));
  if (checkpoint_seq_ != 0 && checkpoint_seq_ != last_seq) {
    const std::string old = manifest_key + "/" + Digits(checkpoint_seq_, 20) + "/";
    done.push_back(EtcdOp::Delete(old, EtcdClient::PrefixEnd(old)));
  }
  FERRY_ASSIGN_OR_RETURN(const int64_t revision, PutFenced(std::move(done), {}));
  checkpoint_seq_ = last_seq;
  if (options_.compact) {
    Status c = etcd_->Compact(revision, NextDeadline());
    if (!c.ok() && c.code() != StatusCode::kOutOfRange) {
      FERRY_LOG_WARN("etcd log {}: compaction at revision {} failed: {}", Describe(), revision,
                     c.ToString());
    }
  }
  return OkStatus();
}

}  // namespace ferry::store
