#include "store/master/metadata_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "common/log.h"

namespace ferry::store {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kWalMagic = "FERRYWAL";
constexpr std::string_view kSnapshotMagic = "FERRYSNP";
constexpr uint32_t kVersion = 1;
constexpr size_t kFileHeaderBytes = 8 + 4;
// u32 payload length, u64 checksum, u64 seq, u8 type.
constexpr size_t kRecordHeaderBytes = 4 + 8 + 8 + 1;
constexpr uint32_t kMaxPayload = 64u << 20;
constexpr std::string_view kSnapshotName = "snapshot";
constexpr std::string_view kSnapshotTmpName = "snapshot.tmp";
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
      PutStr(&p, r.key);
      PutU64(&p, r.size);
      p.push_back(static_cast<char>((r.hard_pin ? 1 : 0) | (r.soft_pin ? 2 : 0)));
      PutU32(&p, static_cast<uint32_t>(r.replicas.size()));
      for (const MetadataRecord::Replica& rep : r.replicas) {
        PutStr(&p, rep.segment_id);
        PutU64(&p, rep.address);
        PutU64(&p, rep.length);
      }
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
    case MetadataRecord::Type::kPut: {
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

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return InternalError(Errno("cannot write", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return UnavailableError(Errno("cannot open directory", dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return UnavailableError(Errno("cannot fsync directory", dir));
  return OkStatus();
}

std::string WalName(uint64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  return "wal." + std::string(20 - std::min<size_t>(20, digits.size()), '0') + digits;
}

// The log files in `dir` by first sequence number.
std::map<uint64_t, std::string> ListLogs(const std::string& dir) {
  std::map<uint64_t, std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 24 || name.rfind("wal.", 0) != 0) continue;
    if (!std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    out.emplace(std::stoull(name.substr(4)), entry.path().string());
  }
  return out;
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
         soft_pin == o.soft_pin && seg(segment) == seg(o.segment);
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
        reps.erase(std::remove_if(reps.begin(), reps.end(),
                                  [&](const MetadataRecord::Replica& x) {
                                    return x.segment_id == r.segment.id;
                                  }),
                   reps.end());
        it = reps.empty() ? objects.erase(it) : std::next(it);
      }
      break;
    }
    case MetadataRecord::Type::kPut: {
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

Result<MetadataLog::ReadResult> MetadataLog::ReadFile(const std::string& path,
                                                      std::string_view magic,
                                                      bool allow_torn_tail) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError(Errno("cannot open", path));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ReadResult result;
  if (data.size() < kFileHeaderBytes || std::string_view(data).substr(0, 8) != magic) {
    if (allow_torn_tail && data.size() < kFileHeaderBytes &&
        std::string_view(magic).substr(0, data.size()) == data) {
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
  size_t off = kFileHeaderBytes;
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
          ReadRecord rec;
          rec.seq = GetLE(body, 8);
          rec.offset = off;
          const uint8_t type = static_cast<uint8_t>(body[8]);
          if (type < 1 || type > 6 ||
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

MetadataLog::MetadataLog(Options options) : options_(std::move(options)) {}

MetadataLog::~MetadataLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  std::lock_guard<std::mutex> lock(file_mu_);
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<MetadataLog>> MetadataLog::Open(const Options& options,
                                                       RecoveredMetadata* recovered) {
  if (options.dir.empty()) return InvalidArgumentError("metadata log: no directory");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return UnavailableError("metadata log: cannot create " + options.dir + ": " + ec.message());
  }
  *recovered = RecoveredMetadata{};
  fs::remove(fs::path(options.dir) / kSnapshotTmpName, ec);  // a snapshot never renamed

  const std::string snap_path = (fs::path(options.dir) / kSnapshotName).string();
  if (fs::exists(snap_path, ec)) {
    FERRY_ASSIGN_OR_RETURN(ReadResult snap, ReadFile(snap_path, kSnapshotMagic, false));
    const auto& recs = snap.records;
    if (recs.size() < 2 || recs.front().record.type != MetadataRecord::Type::kSnapshotBegin ||
        recs.back().record.type != MetadataRecord::Type::kSnapshotEnd ||
        recs.back().record.size != recs.size() - 2) {
      return DataLossError(snap_path + " at offset " + std::to_string(snap.valid_bytes) +
                           ": the snapshot is incomplete (no begin/end records)");
    }
    for (size_t i = 1; i + 1 < recs.size(); ++i) recovered->Apply(recs[i].record);
    recovered->snapshot_seq = recs.front().record.size;
    recovered->last_seq = recovered->snapshot_seq;
  }

  const std::map<uint64_t, std::string> logs = ListLogs(options.dir);
  uint64_t log_records = 0;
  uint64_t log_bytes = 0;
  for (auto it = logs.begin(); it != logs.end(); ++it) {
    const bool newest = std::next(it) == logs.end();
    FERRY_ASSIGN_OR_RETURN(ReadResult log, ReadFile(it->second, kWalMagic, newest));
    for (const ReadRecord& rec : log.records) {
      if (rec.seq <= recovered->last_seq) continue;  // covered by the snapshot
      if (rec.seq != recovered->last_seq + 1) {
        return DataLossError(it->second + " at offset " + std::to_string(rec.offset) +
                             ": sequence " + std::to_string(rec.seq) + " after " +
                             std::to_string(recovered->last_seq) + " (records are missing)");
      }
      recovered->Apply(rec.record);
      recovered->last_seq = rec.seq;
      ++log_records;
    }
    log_bytes += log.valid_bytes;
    if (log.torn_tail) {
      FERRY_LOG_WARN("metadata log: {}: dropped a torn record at offset {} (a crash mid-write)",
                     it->second, log.valid_bytes);
      recovered->dropped_torn_tail = true;
      if (::truncate(it->second.c_str(), static_cast<off_t>(log.valid_bytes)) != 0) {
        return UnavailableError(Errno("metadata log: cannot truncate", it->second));
      }
    }
  }
  recovered->log_records = log_records;

  auto log = std::unique_ptr<MetadataLog>(new MetadataLog(options));
  log->next_seq_ = recovered->last_seq + 1;
  log->durable_seq_ = recovered->last_seq;
  log->stats_.log_records = log_records;
  log->stats_.log_bytes = log_bytes;
  {
    std::lock_guard<std::mutex> lock(log->file_mu_);
    FERRY_RETURN_IF_ERROR(log->OpenLogFile(recovered->last_seq + 1));
  }
  MetadataLog* raw = log.get();
  log->committer_ = std::thread([raw] { raw->CommitLoop(); });
  return log;
}

Status MetadataLog::OpenLogFile(uint64_t first_seq) {
  const std::string path = (fs::path(options_.dir) / WalName(first_seq)).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(Errno("metadata log: cannot create", path));
  Status s = WriteAll(fd, FileHeader(kWalMagic), path);
  if (s.ok() && ::fdatasync(fd) != 0) s = UnavailableError(Errno("cannot fdatasync", path));
  if (s.ok()) s = FsyncDir(options_.dir);
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return OkStatus();
}

uint64_t MetadataLog::Append(const MetadataRecord& record) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t seq = next_seq_++;
  pending_.append(Encode(seq, record));
  ++pending_records_;
  return seq;  // written when someone Syncs, or within kIdleFlush
}

void MetadataLog::CommitLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Waits for a Sync (so that the records of one batch RPC go in one commit), or at most
    // kIdleFlush with records nobody waits for (evictions, client drops).
    work_cv_.wait_for(lock, kIdleFlush, [this] {
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
    lock.unlock();

    const Clock::time_point start = Clock::now();
    Status s;
    if (!broken) {
      std::lock_guard<std::mutex> file_lock(file_mu_);
      const std::string what = options_.dir + "/" + "wal";
      s = WriteAll(fd_, batch, what);
      if (s.ok() && ::fdatasync(fd_) != 0) s = InternalError(Errno("cannot fdatasync", what));
    }
    const uint64_t us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());

    lock.lock();
    if (broken) {
      // Nothing more is written after a failure: the file may end in a partial batch.
    } else if (!s.ok()) {
      FERRY_LOG_ERROR("metadata log: {}; refusing further changes", s.ToString());
      failed_ = s;
    } else {
      durable_seq_ = last;
      ++stats_.commits;
      stats_.committed_records += records;
      stats_.commit_micros += us;
      stats_.max_batch = std::max(stats_.max_batch, records);
      stats_.log_records += records;
      stats_.log_bytes += batch.size();
    }
    done_cv_.notify_all();
  }
}

Status MetadataLog::Sync() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = next_seq_ - 1;
  if (target > wanted_seq_) {
    wanted_seq_ = target;
    work_cv_.notify_one();
  }
  const bool done = done_cv_.wait_for(lock, options_.sync_timeout,
                                      [&] { return durable_seq_ >= target || !failed_.ok(); });
  if (durable_seq_ >= target) return OkStatus();
  if (!failed_.ok()) return InternalError("metadata log: " + failed_.message());
  (void)done;
  return DeadlineExceededError("metadata log: no fdatasync within " +
                               std::to_string(options_.sync_timeout.count()) + " ms");
}

bool MetadataLog::SnapshotDue() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_.log_records >= options_.snapshot_every_records ||
         stats_.log_bytes >= options_.snapshot_every_bytes;
}

Result<uint64_t> MetadataLog::Rotate() {
  FERRY_RETURN_IF_ERROR(Sync());
  uint64_t last = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = next_seq_ - 1;
  }
  std::lock_guard<std::mutex> file_lock(file_mu_);
  FERRY_RETURN_IF_ERROR(OpenLogFile(last + 1));
  std::lock_guard<std::mutex> lock(mu_);
  stats_.log_records = 0;
  stats_.log_bytes = kFileHeaderBytes;
  return last;
}

Status MetadataLog::WriteSnapshot(uint64_t last_seq, const std::vector<MetadataRecord>& records) {
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

  const std::string tmp = (fs::path(options_.dir) / kSnapshotTmpName).string();
  const std::string path = (fs::path(options_.dir) / kSnapshotName).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(Errno("snapshot: cannot create", tmp));
  Status s = WriteAll(fd, data, tmp);
  if (s.ok() && ::fsync(fd) != 0) s = UnavailableError(Errno("snapshot: cannot fsync", tmp));
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = UnavailableError(Errno("snapshot: cannot rename", tmp));
  }
  if (s.ok()) s = FsyncDir(options_.dir);
  if (!s.ok()) return s;
  // The logs the snapshot covers: every file before the one that starts after last_seq.
  for (const auto& [first, name] : ListLogs(options_.dir)) {
    if (first <= last_seq) {
      std::error_code ec;
      fs::remove(name, ec);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.snapshots;
  return OkStatus();
}

MetadataLog::Stats MetadataLog::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ferry::store
