#include "store/master/metadata_log.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "common/log.h"
#include "common/mutex.h"
#include "store/master/file_log_storage.h"

namespace ferry::store {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kWalMagic = "FERRYWAL";
constexpr std::string_view kSnapshotMagic = "FERRYSNP";
constexpr uint32_t kVersion = 1;
// u32 payload length, u64 checksum, u64 seq, u8 type.
constexpr size_t kRecordHeaderBytes = 4 + 8 + 8 + 1;
constexpr uint32_t kMaxPayload = 64u << 20;
// Records that no Sync waits for are written after at most this long.
constexpr std::chrono::milliseconds kIdleFlush{20};

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutStr(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Bounds-checked reading of one payload.
class Decoder {
 public:
  explicit Decoder(std::string_view data) : data_(data) {}
  bool U8(uint8_t* v) {
    if (data_.size() < 1) return false;
    *v = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (data_.size() < 4) return false;
    *v = static_cast<uint32_t>(GetLE(data_.data(), 4));
    data_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (data_.size() < 8) return false;
    *v = GetLE(data_.data(), 8);
    data_.remove_prefix(8);
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || data_.size() < n) return false;
    s->assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }
  bool done() const { return data_.empty(); }

 private:
  std::string_view data_;
};

std::string EncodePayload(const MetadataRecord& r) {
  std::string p;
  switch (r.type) {
    case MetadataRecord::Type::kMount:
      PutStr(&p, r.segment.id);
      PutStr(&p, r.segment.name);
      PutStr(&p, r.segment.hostname);
      PutU64(&p, r.segment.base);
      PutU64(&p, r.segment.size);
      PutStr(&p, r.segment.client_id);
      break;
    case MetadataRecord::Type::kUnmount:
      PutStr(&p, r.segment.id);
      break;
    case MetadataRecord::Type::kPut:
    case MetadataRecord::Type::kPutStart:
      PutStr(&p, r.key);
      PutU64(&p, r.size);
      p.push_back(static_cast<char>((r.hard_pin ? 1 : 0) | (r.soft_pin ? 2 : 0)));
      PutU32(&p, static_cast<uint32_t>(r.replicas.size()));
      for (const MetadataRecord::Replica& rep : r.replicas) {
        PutStr(&p, rep.segment_id);
        PutU64(&p, rep.address);
        PutU64(&p, rep.length);
      }
      if (r.type == MetadataRecord::Type::kPutStart) PutStr(&p, r.writer);
      break;
    case MetadataRecord::Type::kRemove:
      PutStr(&p, r.key);
      break;
    case MetadataRecord::Type::kSnapshotBegin:
    case MetadataRecord::Type::kSnapshotEnd:
      PutU64(&p, r.size);
      break;
  }
  return p;
}

bool DecodePayload(uint8_t type, std::string_view payload, MetadataRecord* r) {
  Decoder d(payload);
  r->type = static_cast<MetadataRecord::Type>(type);
  bool ok = false;
  switch (r->type) {
    case MetadataRecord::Type::kMount:
      ok = d.Str(&r->segment.id) && d.Str(&r->segment.name) && d.Str(&r->segment.hostname) &&
           d.U64(&r->segment.base) && d.U64(&r->segment.size) && d.Str(&r->segment.client_id);
      break;
    case MetadataRecord::Type::kUnmount:
      ok = d.Str(&r->segment.id);
      break;
    case MetadataRecord::Type::kPut:
    case MetadataRecord::Type::kPutStart: {
      uint8_t flags = 0;
      uint32_t n = 0;
      ok = d.Str(&r->key) && d.U64(&r->size) && d.U8(&flags) && d.U32(&n) && n <= 1024;
      r->hard_pin = (flags & 1) != 0;
      r->soft_pin = (flags & 2) != 0;
      for (uint32_t i = 0; ok && i < n; ++i) {
        MetadataRecord::Replica rep;
        ok = d.Str(&rep.segment_id) && d.U64(&rep.address) && d.U64(&rep.length);
        r->replicas.push_back(std::move(rep));
      }
      if (ok && r->type == MetadataRecord::Type::kPutStart) ok = d.Str(&r->writer);
      break;
    }
    case MetadataRecord::Type::kRemove:
      ok = d.Str(&r->key);
      break;
    case MetadataRecord::Type::kSnapshotBegin:
    case MetadataRecord::Type::kSnapshotEnd:
      ok = d.U64(&r->size);
      break;
  }
  return ok && d.done();
}

std::string FileHeader(std::string_view magic) {
  std::string h(magic);
  PutU32(&h, kVersion);
  return h;
}

}  // namespace

MetadataRecord MetadataRecord::Mount(const SegmentInfo& segment) {
  MetadataRecord r;
  r.type = Type::kMount;
  r.segment = segment;
  return r;
}

MetadataRecord MetadataRecord::Unmount(std::string_view segment_id) {
  MetadataRecord r;
  r.type = Type::kUnmount;
  r.segment.id = std::string(segment_id);
  return r;
}

MetadataRecord MetadataRecord::Remove(std::string_view key) {
  MetadataRecord r;
  r.type = Type::kRemove;
  r.key = std::string(key);
  return r;
}

bool MetadataRecord::operator==(const MetadataRecord& o) const {
  auto seg = [](const SegmentInfo& s) {
    return std::tie(s.id, s.name, s.hostname, s.base, s.size, s.client_id);
  };
  auto rep = [](const Replica& r) { return std::tie(r.segment_id, r.address, r.length); };
  if (replicas.size() != o.replicas.size()) return false;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (rep(replicas[i]) != rep(o.replicas[i])) return false;
  }
  return type == o.type && key == o.key && size == o.size && hard_pin == o.hard_pin &&
         soft_pin == o.soft_pin && writer == o.writer && seg(segment) == seg(o.segment);
}

void RecoveredMetadata::Apply(const MetadataRecord& r) {
  switch (r.type) {
    case MetadataRecord::Type::kMount:
      segments[r.segment.id] = r.segment;
      break;
    case MetadataRecord::Type::kUnmount: {
      segments.erase(r.segment.id);
      for (auto it = objects.begin(); it != objects.end();) {
        auto& reps = it->second.replicas;
        const size_t before = reps.size();
        reps.erase(std::remove_if(reps.begin(), reps.end(),
                                  [&](const MetadataRecord::Replica& x) {
                                    return x.segment_id == r.segment.id;
                                  }),
                   reps.end());
        const bool in_progress = it->second.type == MetadataRecord::Type::kPutStart;
        it = reps.empty() || (in_progress && reps.size() != before) ? objects.erase(it)
                                                                    : std::next(it);
      }
      break;
    }
    case MetadataRecord::Type::kPut:
    case MetadataRecord::Type::kPutStart: {
      // A replica on a segment not mounted at this point of the log was logged by a PutEnd
      // racing that segment's unmount: the master dropped it (and the object, with no
      // replica left) right after.
      MetadataRecord put = r;
      std::erase_if(put.replicas, [&](const MetadataRecord::Replica& x) {
        return segments.find(x.segment_id) == segments.end();
      });
      if (put.replicas.empty()) {
        objects.erase(r.key);
      } else {
        objects[r.key] = std::move(put);
      }
      break;
    }
    case MetadataRecord::Type::kRemove:
      objects.erase(r.key);
      break;
    case MetadataRecord::Type::kSnapshotBegin:
    case MetadataRecord::Type::kSnapshotEnd:
      break;
  }
}

std::string MetadataLog::Encode(uint64_t seq, const MetadataRecord& record) {
  const std::string payload = EncodePayload(record);
  std::string body;
  body.reserve(9 + payload.size());
  PutU64(&body, seq);
  body.push_back(static_cast<char>(record.type));
  body.append(payload);
  std::string out;
  out.reserve(12 + body.size());
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU64(&out, XXH64(body.data(), body.size(), 0));
  out.append(body);
  return out;
}

Result<ParsedLog> MetadataLog::ReadFile(const std::string& path, std::string_view magic,
                                        bool allow_torn_tail) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError("cannot open " + path + ": " + std::strerror(errno));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Parse(data, magic, path, allow_torn_tail);
}

bool MetadataLog::PeekRecord(std::string_view data, size_t* size, uint64_t* seq) {
  if (data.size() < kRecordHeaderBytes) return false;
  *size = kRecordHeaderBytes + static_cast<size_t>(GetLE(data.data(), 4));
  *seq = GetLE(data.data() + 12, 8);
  return true;
}

Result<ParsedLog> MetadataLog::Parse(std::string_view data, std::string_view magic,
                                     const std::string& path, bool allow_torn_tail) {
  ParsedLog result;
  size_t off = 0;
  if (!magic.empty()) {
    if (data.size() < kFileHeaderBytes || data.substr(0, 8) != magic) {
      if (allow_torn_tail && data.size() < kFileHeaderBytes &&
          magic.substr(0, data.size()) == data) {
        result.torn_tail = !data.empty();  // a header never completely written
        return result;
      }
      return DataLossError(path + " at offset 0: not a ferry " +
                           std::string(magic == kWalMagic ? "log" : "snapshot") + " file");
    }
    const uint32_t version = static_cast<uint32_t>(GetLE(data.data() + 8, 4));
    if (version != kVersion) {
      return DataLossError(path + " at offset 8: format version " + std::to_string(version) +
                           ", this master reads " + std::to_string(kVersion));
    }
    off = kFileHeaderBytes;
  }
  result.valid_bytes = off;
  while (off < data.size()) {
    // What is wrong with the record at `off`, if anything; a bad record with nothing but
    // itself (or zeros) after it is a torn tail.
    std::string bad;
    size_t end = data.size();
    if (data.size() - off < kRecordHeaderBytes) {
      bad = "truncated record header";
    } else {
      const uint32_t len = static_cast<uint32_t>(GetLE(data.data() + off, 4));
      if (len > kMaxPayload) {
        // Never written so: torn only if nothing but zeros follows.
        end = off;
        bad = "record length " + std::to_string(len) + " out of range";
      } else if (data.size() - off - kRecordHeaderBytes < len) {
        bad = "record runs past the end of the file";
      } else {
        end = off + kRecordHeaderBytes + len;
        const uint64_t sum = GetLE(data.data() + off + 4, 8);
        const char* body = data.data() + off + 12;
        if (XXH64(body, 9 + len, 0) != sum) {
          bad = "checksum mismatch";
        } else {
          LoggedRecord rec;
          rec.seq = GetLE(body, 8);
          rec.offset = off;
          const uint8_t type = static_cast<uint8_t>(body[8]);
          if (type < 1 || type > 7 ||
              !DecodePayload(type, std::string_view(body + 9, len), &rec.record)) {
            return DataLossError(path + " at offset " + std::to_string(off) +
                                 ": malformed record of type " + std::to_string(type));
          }
          result.records.push_back(std::move(rec));
          off = end;
          result.valid_bytes = off;
          continue;
        }
      }
    }
    const bool only_tail = std::all_of(data.begin() + static_cast<std::ptrdiff_t>(end), data.end(),
                                       [](char c) { return c == 0; });
    if (allow_torn_tail && only_tail) {
      result.torn_tail = true;
      return result;
    }
    return DataLossError(path + " at offset " + std::to_string(off) + ": " + bad);
  }
  return result;
}

MetadataLog::MetadataLog(Options options, std::unique_ptr<LogStorage> storage)
    : options_(std::move(options)), storage_(std::move(storage)) {}

MetadataLog::~MetadataLog() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  if (committer_.joinable()) committer_.join();
}

Result<std::unique_ptr<MetadataLog>> MetadataLog::Open(const Options& options,
                                                       RecoveredMetadata* recovered) {
  if (options.dir.empty()) return InvalidArgumentError("metadata log: no directory");
  return Open(options, std::make_unique<FileLogStorage>(options.dir), recovered);
}

Result<std::unique_ptr<MetadataLog>> MetadataLog::Open(const Options& options,
                                                       std::unique_ptr<LogStorage> storage,
                                                       RecoveredMetadata* recovered) {
  *recovered = RecoveredMetadata{};
  FERRY_RETURN_IF_ERROR(storage->Load(recovered));
  auto log = std::unique_ptr<MetadataLog>(new MetadataLog(options, std::move(storage)));
  {
    MutexLock lock(&log->mu_);  // uncontended: the committer thread starts below
    log->next_seq_ = recovered->last_seq + 1;
    log->durable_seq_ = recovered->last_seq;
    log->stats_.log_records = recovered->log_records;
    log->stats_.log_bytes = recovered->log_bytes;
    log->stats_.durable_seq = recovered->last_seq;
  }
  MetadataLog* raw = log.get();
  log->committer_ = std::thread([raw] { raw->CommitLoop(); });
  return log;
}

std::string MetadataLog::LogFileHeader() { return FileHeader(kWalMagic); }

std::string MetadataLog::EncodeSnapshot(uint64_t last_seq,
                                        const std::vector<MetadataRecord>& records) {
  std::string data = FileHeader(kSnapshotMagic);
  MetadataRecord begin;
  begin.type = MetadataRecord::Type::kSnapshotBegin;
  begin.size = last_seq;
  uint64_t seq = 1;
  data.append(Encode(seq++, begin));
  for (const MetadataRecord& r : records) data.append(Encode(seq++, r));
  MetadataRecord end;
  end.type = MetadataRecord::Type::kSnapshotEnd;
  end.size = records.size();
  data.append(Encode(seq++, end));
  return data;
}

Status RecoveredMetadata::ApplySnapshot(std::string_view snapshot, const std::string& where) {
  FERRY_ASSIGN_OR_RETURN(ParsedLog snap, MetadataLog::Parse(snapshot, kSnapshotMagic, where,
                                                            /*allow_torn_tail=*/false));
  const auto& recs = snap.records;
  if (recs.size() < 2 || recs.front().record.type != MetadataRecord::Type::kSnapshotBegin ||
      recs.back().record.type != MetadataRecord::Type::kSnapshotEnd ||
      recs.back().record.size != recs.size() - 2) {
    return DataLossError(where + " at offset " + std::to_string(snap.valid_bytes) +
                         ": the snapshot is incomplete (no begin/end records)");
  }
  for (size_t i = 1; i + 1 < recs.size(); ++i) Apply(recs[i].record);
  snapshot_seq = recs.front().record.size;
  last_seq = snapshot_seq;
  return OkStatus();
}

Status RecoveredMetadata::Replay(const ParsedLog& log, const std::string& where) {
  for (const LoggedRecord& rec : log.records) {
    if (rec.seq <= last_seq) continue;  // covered by the snapshot
    if (rec.seq != last_seq + 1) {
      return DataLossError(where + " at offset " + std::to_string(rec.offset) + ": sequence " +
                           std::to_string(rec.seq) + " after " + std::to_string(last_seq) +
                           " (records are missing)");
    }
    Apply(rec.record);
    last_seq = rec.seq;
    ++log_records;
  }
  log_bytes += log.valid_bytes;
  return OkStatus();
}

uint64_t MetadataLog::Append(const MetadataRecord& record) {
  MutexLock lock(&mu_);
  const uint64_t seq = next_seq_++;
  pending_.append(Encode(seq, record));
  ++pending_records_;
  return seq;  // written when someone Syncs, or within kIdleFlush
}

void MetadataLog::CommitLoop() {
  MutexLock lock(&mu_);
  for (;;) {
    // Waits for a Sync (so that the records of one batch RPC go in one commit), or at most
    // kIdleFlush with records nobody waits for (evictions, client drops).
    work_cv_.WaitFor(&mu_, kIdleFlush, [this]() FERRY_REQUIRES(mu_) {
      return (wanted_seq_ > durable_seq_ && !pending_.empty()) || stopping_;
    });
    if (pending_.empty()) {
      if (stopping_) return;
      continue;
    }
    std::string batch;
    batch.swap(pending_);
    const uint64_t last = next_seq_ - 1;
    const uint64_t records = pending_records_;
    pending_records_ = 0;
    const bool broken = !failed_.ok();
    lock.Unlock();

    const Clock::time_point start = Clock::now();
    Status s;
    // Nothing more is written after a failure: the storage may end in a partial batch.
    if (!broken) s = storage_->Append(last - records + 1, last, batch);
    const uint64_t us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());

    lock.Lock();
    if (broken) {
    } else if (!s.ok()) {
      FERRY_LOG_ERROR("metadata log {}: {}; refusing further changes", storage_->Describe(),
                      s.ToString());
      failed_ = s;
    } else {
      durable_seq_ = last;
      ++stats_.commits;
      stats_.committed_records += records;
      stats_.commit_micros += us;
      stats_.max_batch = std::max(stats_.max_batch, records);
      stats_.log_records += records;
      stats_.log_bytes += batch.size();
      stats_.durable_seq = last;
      for (size_t i = 0; i < kCommitBucketsUs.size(); ++i) {
        if (us <= kCommitBucketsUs[i]) ++stats_.commit_buckets[i];
      }
      for (size_t i = 0; i < kBatchBuckets.size(); ++i) {
        if (records <= kBatchBuckets[i]) ++stats_.batch_buckets[i];
      }
    }
    done_cv_.SignalAll();
  }
}

Status MetadataLog::Sync() {
  MutexLock lock(&mu_);
  const uint64_t target = next_seq_ - 1;
  if (target > wanted_seq_) {
    wanted_seq_ = target;
    work_cv_.Signal();
  }
  done_cv_.WaitFor(&mu_, options_.sync_timeout,
                   [&]() FERRY_REQUIRES(mu_) { return durable_seq_ >= target || !failed_.ok(); });
  if (durable_seq_ >= target) return OkStatus();
  if (!failed_.ok()) return failed_.WithContext("metadata log " + storage_->Describe());
  return DeadlineExceededError("metadata log " + storage_->Describe() + ": not durable within " +
                               std::to_string(options_.sync_timeout.count()) + " ms");
}

bool MetadataLog::SnapshotDue() const {
  MutexLock lock(&mu_);
  return stats_.log_records >= options_.snapshot_every_records ||
         stats_.log_bytes >= options_.snapshot_every_bytes;
}

Result<uint64_t> MetadataLog::Rotate() {
  FERRY_RETURN_IF_ERROR(Sync());
  uint64_t last = 0;
  {
    MutexLock lock(&mu_);
    last = next_seq_ - 1;
  }
  FERRY_RETURN_IF_ERROR(storage_->Rotate(last + 1));
  MutexLock lock(&mu_);
  stats_.log_records = 0;
  stats_.log_bytes = 0;
  return last;
}

Status MetadataLog::WriteSnapshot(uint64_t last_seq, const std::vector<MetadataRecord>& records) {
  FERRY_RETURN_IF_ERROR(storage_->WriteSnapshot(last_seq, EncodeSnapshot(last_seq, records)));
  MutexLock lock(&mu_);
  ++stats_.snapshots;
  return OkStatus();
}

Status MetadataLog::health() const {
  MutexLock lock(&mu_);
  return failed_;
}

MetadataLog::Stats MetadataLog::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace ferry::store
