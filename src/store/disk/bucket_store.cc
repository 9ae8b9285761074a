#include "store/disk/bucket_store.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/log.h"
#include "common/mutex.h"
#include "store/disk/internal/checksum.h"

namespace ferry::store {

static_assert(std::endian::native == std::endian::little, "bucket files are little-endian");

struct BucketStore::BucketFile {
  std::string path;
  UniqueFd fd;         // O_RDONLY (or O_RDWR while written): buffered reads
  UniqueFd direct_fd;  // O_RDONLY | O_DIRECT, invalid unless direct_io and supported
};

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHeaderMagic = "FERRYBKT";
constexpr std::string_view kFooterMagic = "FERRYBKF";
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderChecked = 32;  // header bytes covered by its checksum
constexpr std::string_view kLockName = "LOCK";
constexpr std::string_view kTombstonesName = "TOMBSTONES";
constexpr std::string_view kBucketPrefix = "bucket.";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr size_t kIdDigits = 20;
constexpr uint64_t kVerifyChunk = 4 << 20;     // Open reads object data in pieces of this size
constexpr uint64_t kWritebackChunk = 8 << 20;  // WriteBucket starts writeback after each

alignas(4096) constexpr std::byte kZeros[BucketStore::kAlignment] = {};

uint64_t AlignUp(uint64_t n) {
  return (n + BucketStore::kAlignment - 1) & ~(BucketStore::kAlignment - 1);
}

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// An IO error on `path`: ResourceExhausted for a full disk, Internal otherwise.
Status IoError(int err, std::string_view what, const std::string& path) {
  std::string msg = "bucket store: " + std::string(what) + " " + path + ": " + ErrnoText(err);
  if (err == ENOSPC || err == EDQUOT) return ResourceExhaustedError("disk full: " + msg);
  return InternalError(std::move(msg));
}

// Reads exactly `len` bytes at `offset`. Returns 0, -1 when the file ends first, or errno.
int PreadFull(int fd, void* buf, uint64_t len, uint64_t offset) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t n = ::pread(fd, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return -1;
    p += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// Writes every byte of `iov` from offset 0: pwritev calls of at most IOV_MAX vectors and
// kWritebackChunk bytes, each followed by starting (not waiting for) the writeback of what
// it wrote, so that the device works while the next piece is copied and the final fdatasync
// has little left to wait for.
Status PwritevAll(int fd, const std::vector<iovec>& iov, const std::string& path) {
  size_t i = 0;     // the first vector not written in full
  size_t skip = 0;  // bytes of iov[i] written
  uint64_t pos = 0;
  std::vector<iovec> batch;
  batch.reserve(std::min<size_t>(iov.size(), IOV_MAX));
  while (i < iov.size()) {
    batch.clear();
    uint64_t bytes = 0;
    for (size_t j = i, s = skip;
         j < iov.size() && batch.size() < IOV_MAX && bytes < kWritebackChunk; ++j, s = 0) {
      const size_t n = std::min<uint64_t>(iov[j].iov_len - s, kWritebackChunk - bytes);
      batch.push_back(iovec{static_cast<char*>(iov[j].iov_base) + s, n});
      bytes += n;
    }
    const ssize_t n =
        ::pwritev(fd, batch.data(), static_cast<int>(batch.size()), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(errno, "cannot write", path);
    }
    if (n == 0) return InternalError("bucket store: cannot write " + path + ": no progress");
    ::sync_file_range(fd, static_cast<off_t>(pos), n, SYNC_FILE_RANGE_WRITE);
    pos += static_cast<uint64_t>(n);
    for (size_t left = static_cast<size_t>(n); left > 0 && i < iov.size();) {
      const size_t avail = iov[i].iov_len - skip;
      if (left >= avail) {
        left -= avail;
        ++i;
        skip = 0;
      } else {
        skip += left;
        left = 0;
      }
    }
  }
  return OkStatus();
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return IoError(errno, "cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return IoError(errno, "cannot fsync directory", dir);
  return OkStatus();
}

// "bucket.<20 digits>" or "bucket.<20 digits>.tmp" -> the id; nullopt for other names.
std::optional<uint64_t> ParseBucketName(const std::string& name, bool* temp) {
  std::string_view s = name;
  if (!s.starts_with(kBucketPrefix)) return std::nullopt;
  s.remove_prefix(kBucketPrefix.size());
  *temp = s.ends_with(kTempSuffix);
  if (*temp) s.remove_suffix(kTempSuffix.size());
  if (s.size() != kIdDigits) return std::nullopt;
  uint64_t id = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (id > (UINT64_MAX - 9) / 10) return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

iovec Iov(const void* p, size_t n) { return iovec{const_cast<void*>(p), n}; }

}  // namespace

BucketStore::BucketStore(BucketStoreOptions options, UniqueFd lock_fd)
    : options_(std::move(options)), lock_fd_(std::move(lock_fd)) {}

BucketStore::~BucketStore() = default;

std::string BucketStore::BucketPath(uint64_t bucket, bool temp) const {
  std::string digits = std::to_string(bucket);
  std::string name = std::string(kBucketPrefix) + std::string(kIdDigits - digits.size(), '0') +
                     digits + (temp ? std::string(kTempSuffix) : std::string());
  return (fs::path(options_.path) / name).string();
}

uint64_t BucketStore::BucketBytes(std::span<const uint64_t> sizes, uint64_t total_key_bytes) {
  uint64_t bytes = kHeaderBytes + kFooterBytes + total_key_bytes;
  for (uint64_t size : sizes) bytes += AlignUp(size) + kIndexEntryFixedBytes;
  return bytes;
}

uint64_t BucketStore::BucketBytes(std::span<const WriteItem> items) {
  std::vector<uint64_t> sizes;
  sizes.reserve(items.size());
  uint64_t key_bytes = 0;
  for (const WriteItem& item : items) {
    uint64_t size = 0;
    for (const auto& part : item.parts) size += part.size();
    sizes.push_back(size);
    key_bytes += item.key.size();
  }
  return BucketBytes(sizes, key_bytes);
}

Result<std::unique_ptr<BucketStore>> BucketStore::Open(const BucketStoreOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("bucket store: options.path is empty");
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec) {
    return InternalError("bucket store: cannot create " + options.path + ": " + ec.message());
  }
  const std::string lock_path = (fs::path(options.path) / kLockName).string();
  UniqueFd lock_fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_fd.valid()) return IoError(errno, "cannot open", lock_path);
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return FailedPreconditionError("bucket store: " + options.path +
                                     " is in use by another open store (flock on " + lock_path +
                                     "); close it first");
    }
    return IoError(errno, "cannot lock", lock_path);
  }
  std::unique_ptr<BucketStore> store(new BucketStore(options, std::move(lock_fd)));
  FERRY_RETURN_IF_ERROR(store->LoadBuckets());
  return store;
}

namespace {

// Reads and checks the header, footer and index of the bucket file `fd` (named with id
// `id`); fills `entries` with its index. Any error means the file is bad.
Status ReadBucketIndex(int fd, uint64_t id, const std::string& path, uint64_t* file_bytes,
                       std::vector<std::pair<std::string, std::array<uint64_t, 3>>>* entries) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return IoError(errno, "cannot stat", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  *file_bytes = size;
  if (size < BucketStore::kHeaderBytes + BucketStore::kFooterBytes) {
    return DataLossError("truncated: " + std::to_string(size) + " bytes");
  }
  char header[kHeaderChecked + 8];
  if (int err = PreadFull(fd, header, sizeof(header), 0); err != 0) {
    return err < 0 ? DataLossError("truncated header") : IoError(err, "cannot read", path);
  }
  if (std::string_view(header, 8) != kHeaderMagic) return DataLossError("bad header magic");
  if (internal::Checksum(header, kHeaderChecked) != GetU64(header + kHeaderChecked)) {
    return DataLossError("header checksum mismatch");
  }
  if (GetU32(header + 8) != kVersion) {
    return DataLossError("unknown version " + std::to_string(GetU32(header + 8)));
  }
  if (GetU64(header + 16) != id) {
    return DataLossError("header names bucket " + std::to_string(GetU64(header + 16)));
  }
  char footer[BucketStore::kFooterBytes];
  if (int err = PreadFull(fd, footer, sizeof(footer), size - sizeof(footer)); err != 0) {
    return err < 0 ? DataLossError("truncated footer") : IoError(err, "cannot read", path);
  }
  if (std::string_view(footer + 32, 8) != kFooterMagic) return DataLossError("bad footer magic");
  const uint64_t index_offset = GetU64(footer);
  const uint64_t index_len = GetU64(footer + 8);
  const uint64_t count = GetU64(footer + 16);
  const uint64_t index_sum = GetU64(footer + 24);
  const uint64_t index_end = size - BucketStore::kFooterBytes;
  if (index_offset < BucketStore::kHeaderBytes || index_offset > index_end ||
      index_offset % BucketStore::kAlignment != 0 || index_len != index_end - index_offset ||
      index_len > BucketStore::kMaxIndexBytes || count > BucketStore::kMaxObjects ||
      count * (BucketStore::kIndexEntryFixedBytes + 1) > index_len) {
    return DataLossError("footer out of range (index offset " + std::to_string(index_offset) +
                         ", length " + std::to_string(index_len) + ", entries " +
                         std::to_string(count) + ", file " + std::to_string(size) + " bytes)");
  }
  std::string index(index_len, '\0');
  if (int err = PreadFull(fd, index.data(), index_len, index_offset); err != 0) {
    return err < 0 ? DataLossError("truncated index") : IoError(err, "cannot read", path);
  }
  if (internal::Checksum(index.data(), index.size()) != index_sum) {
    return DataLossError("index checksum mismatch");
  }
  entries->clear();
  entries->reserve(count);
  size_t pos = 0;
  uint64_t data_end = BucketStore::kHeaderBytes;  // end of the previous object
  for (uint64_t i = 0; i < count; ++i) {
    if (index.size() - pos < 4) return DataLossError("index entry " + std::to_string(i) + " cut");
    const uint32_t key_len = GetU32(index.data() + pos);
    if (key_len == 0 || key_len > BucketStore::kMaxKeyBytes ||
        index.size() - pos - 4 < key_len + 24) {
      return DataLossError("index entry " + std::to_string(i) + " out of range");
    }
    std::string key(index.data() + pos + 4, key_len);
    const char* p = index.data() + pos + 4 + key_len;
    const std::array<uint64_t, 3> loc = {GetU64(p), GetU64(p + 8), GetU64(p + 16)};
    if (loc[0] % BucketStore::kAlignment != 0 || loc[0] < data_end || loc[0] > index_offset ||
        loc[1] > index_offset - loc[0]) {
      return DataLossError("index entry " + std::to_string(i) + " points out of the data");
    }
    data_end = loc[0] + loc[1];
    entries->emplace_back(std::move(key), loc);
    pos += 4 + key_len + 24;
  }
  if (pos != index.size()) return DataLossError("index has trailing bytes");
  return OkStatus();
}

}  // namespace

Status BucketStore::LoadBuckets() {
  MutexLock log_lock(&log_mu_);
  MutexLock lock(&mu_);
  {  // The highest id handed out, kept in LOCK (bucket files may all be gone).
    char text[kIdDigits + 1] = {};
    const ssize_t n = ::pread(lock_fd_.get(), text, kIdDigits, 0);
    if (n > 0) next_id_ = std::max<uint64_t>(next_id_, std::strtoull(text, nullptr, 10) + 1);
  }
  std::map<uint64_t, std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.path, ec)) {
    bool temp = false;
    const std::optional<uint64_t> id = ParseBucketName(entry.path().filename().string(), &temp);
    if (!id) continue;
    next_id_ = std::max(next_id_, *id + 1);
    if (temp) {
      FERRY_LOG_INFO("bucket store: removing {} (a write that did not finish)",
                     entry.path().string());
      std::error_code rm_ec;
      fs::remove(entry.path(), rm_ec);
      continue;
    }
    files.emplace(*id, entry.path().string());
  }
  if (ec) return InternalError("bucket store: cannot list " + options_.path + ": " + ec.message());

  std::vector<char> chunk;
  internal::ChecksumStream stream;
  std::vector<std::string> emptied;
  std::vector<Tombstone> killed;  // copies a later bucket replaced
  for (const auto& [id, path] : files) {
    auto file = std::make_shared<BucketFile>();
    file->path = path;
    file->fd.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    uint64_t file_bytes = 0;
    std::vector<std::pair<std::string, std::array<uint64_t, 3>>> entries;
    Status s = file->fd.valid() ? ReadBucketIndex(file->fd.get(), id, path, &file_bytes, &entries)
                                : IoError(errno, "cannot open", path);
    // Every object's data, in file order (one sequential pass).
    std::vector<bool> good(entries.size(), true);
    if (s.ok()) ::posix_fadvise(file->fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    for (size_t i = 0; s.ok() && i < entries.size(); ++i) {
      const auto& [offset, length, sum] = entries[i].second;
      stream.Reset();
      for (uint64_t done = 0; s.ok() && done < length;) {
        const uint64_t n = std::min(kVerifyChunk, length - done);
        chunk.resize(n);
        const int err = PreadFull(file->fd.get(), chunk.data(), n, offset + done);
        if (err != 0) {
          s = err < 0 ? DataLossError("truncated data") : IoError(err, "cannot read", path);
        }
        stream.Update(chunk.data(), n);
        done += n;
      }
      const uint64_t actual = stream.Digest();
      if (s.ok() && actual != sum) {
        FERRY_LOG_WARN("bucket store: {}: object '{}' at offset {} fails its checksum; dropped",
                       path, entries[i].first, offset);
        good[i] = false;
        ++checksum_errors_;
      }
    }
    // The check read the whole file; it need not stay in the page cache.
    if (file->fd.valid()) ::posix_fadvise(file->fd.get(), 0, 0, POSIX_FADV_DONTNEED);
    if (!s.ok()) {
      FERRY_LOG_WARN("bucket store: dropping bucket file {}: {}", path, s.message());
      std::error_code rm_ec;
      fs::remove(path, rm_ec);
      ++dropped_at_open_;
      continue;
    }
    if (options_.direct_io)
      file->direct_fd.Reset(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    Bucket& bucket = buckets_[id];
    bucket.file = std::move(file);
    bucket.file_bytes = file_bytes;
    bytes_ += file_bytes;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!good[i]) continue;
      const auto& [offset, length, sum] = entries[i].second;
      InstallLocked(entries[i].first, Location{id, offset, length, sum}, &emptied, &killed);
    }
    if (auto it = buckets_.find(id); it != buckets_.end() && it->second.live_keys.empty()) {
      emptied.push_back(ForgetBucketLocked(it));
    }
  }

  // The tombstone log, after every bucket: a live record drops the copy it names (a copy a
  // later bucket replaced is already dead and was marked above).
  std::set<std::pair<uint64_t, std::string>> unlogged;  // marked above, not (yet) seen in the log
  for (Tombstone& t : killed) unlogged.emplace(t.bucket, std::move(t.key));
  killed.clear();
  const std::string log_path = (fs::path(options_.path) / kTombstonesName).string();
  std::error_code tmp_ec;
  fs::remove(log_path + ".tmp", tmp_ec);  // a compaction that did not finish
  auto visit = [&](uint64_t bucket, std::string_view key_view) FERRY_REQUIRES(mu_) {
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return;  // dead: the bucket is gone
    std::string key(key_view);
    if (!KillCopyLocked(bucket, key)) {
      unlogged.erase({bucket, key});  // marked already (or a repeated record)
      return;
    }
    if (auto it = objects_.find(key); it != objects_.end() && it->second.bucket == bucket) {
      if (auto path = EraseLocked(it)) emptied.push_back(std::move(*path));
    }
  };
  FERRY_ASSIGN_OR_RETURN(log_, internal::TombstoneLog::Open(log_path, visit));
  for (auto& [bucket, key] : unlogged) {
    if (auto b = buckets_.find(bucket); b != buckets_.end() && b->second.tombstones.contains(key)) {
      killed.push_back(Tombstone{bucket, key});
    }
  }
  lock.Unlock();

  log_file_bytes_.store(log_->bytes(), std::memory_order_relaxed);
  if (!killed.empty()) {  // a crash between a replacing WriteBucket and its records
    FERRY_LOG_INFO("bucket store: logging {} replaced copies that had no tombstone", killed.size());
    FERRY_RETURN_IF_ERROR(log_->Append(killed));
    log_file_bytes_.store(log_->bytes(), std::memory_order_relaxed);
  }
  MaybeCompactLocked();
  for (const std::string& path : emptied) {
    FERRY_LOG_INFO("bucket store: removing {}: no live object", path);
    ::unlink(path.c_str());
  }
  return OkStatus();
}

void BucketStore::InstallLocked(const std::string& key, const Location& loc,
                                std::vector<std::string>* emptied, std::vector<Tombstone>* killed) {
  auto it = objects_.find(key);
  if (it != objects_.end()) {
    if (it->second.bucket > loc.bucket) {  // a later bucket holds it: this copy is dead
      if (KillCopyLocked(loc.bucket, key)) killed->push_back(Tombstone{loc.bucket, key});
      return;
    }
    if (it->second.bucket == loc.bucket) {  // a file listing a key twice: the later wins
      live_bytes_ = live_bytes_ - it->second.size + loc.size;
      it->second = loc;
      return;
    }
    if (KillCopyLocked(it->second.bucket, key))
      killed->push_back(Tombstone{it->second.bucket, key});
    if (auto path = EraseLocked(it)) emptied->push_back(std::move(*path));
  }
  objects_.emplace(key, loc);
  buckets_[loc.bucket].live_keys.insert(key);
  live_bytes_ += loc.size;
}

std::optional<std::string> BucketStore::EraseLocked(ObjectMap::iterator it) {
  const Location loc = it->second;
  live_bytes_ -= loc.size;
  std::optional<std::string> path;
  if (auto b = buckets_.find(loc.bucket); b != buckets_.end()) {
    b->second.live_keys.erase(it->first);
    if (b->second.live_keys.empty()) path = ForgetBucketLocked(b);
  }
  objects_.erase(it);
  return path;
}

bool BucketStore::KillCopyLocked(uint64_t bucket, const std::string& key) {
  auto it = buckets_.find(bucket);
  if (it == buckets_.end() || !it->second.tombstones.insert(key).second) return false;
  const uint64_t record = internal::TombstoneLog::RecordBytes(key.size());
  it->second.tombstone_bytes += record;
  ++tombstones_;
  tombstone_live_bytes_ += record;
  return true;
}

std::string BucketStore::ForgetBucketLocked(std::map<uint64_t, Bucket>::iterator it) {
  std::string path = it->second.file->path;
  bytes_ -= it->second.file_bytes;
  tombstones_ -= it->second.tombstones.size();
  tombstone_live_bytes_ -= it->second.tombstone_bytes;
  buckets_.erase(it);
  return path;
}

Status BucketStore::SyncLogLocked() {
  if (!log_stale_ && !log_->broken()) return OkStatus();
  return RewriteLogLocked();
}

void BucketStore::PersistLocked(std::span<const Tombstone> records) {
  if (records.empty()) return;
  const Status s = log_stale_ || log_->broken() ? RewriteLogLocked() : log_->Append(records);
  log_file_bytes_.store(log_->bytes(), std::memory_order_relaxed);
  if (!s.ok()) {
    log_stale_ = true;
    FERRY_LOG_WARN(
        "bucket store: {} tombstone(s) not logged ({}); the next Remove or DropBucket "
        "rewrites the log",
        records.size(), s.message());
  }
}

Status BucketStore::RewriteLogLocked() {
  std::vector<Tombstone> live;
  {
    MutexLock lock(&mu_);
    live.reserve(tombstones_);
    for (const auto& [id, bucket] : buckets_) {
      for (const std::string& key : bucket.tombstones) live.push_back(Tombstone{id, key});
    }
  }
  const Status s = log_->Rewrite(live);
  log_file_bytes_.store(log_->bytes(), std::memory_order_relaxed);
  FERRY_RETURN_IF_ERROR(s);
  log_stale_ = false;
  log_rewrites_.fetch_add(1, std::memory_order_relaxed);
  return OkStatus();
}

void BucketStore::MaybeCompactLocked() {
  uint64_t live = 0;
  {
    MutexLock lock(&mu_);
    live = tombstone_live_bytes_;
  }
  const uint64_t body = log_->bytes() - internal::TombstoneLog::kHeaderBytes;
  const uint64_t dead = body > live ? body - live : 0;
  if (dead <= options_.tombstone_compact_bytes || dead <= live) return;
  if (Status s = RewriteLogLocked(); !s.ok()) {  // the file in use still holds every record
    FERRY_LOG_WARN("bucket store: compacting the tombstone log failed: {}", s.message());
  }
}

Status BucketStore::RecordHighestId(uint64_t id) {
  std::string text = std::to_string(id);
  text.resize(kIdDigits, ' ');
  if (::pwrite(lock_fd_.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return IoError(errno, "cannot write", (fs::path(options_.path) / kLockName).string());
  }
  return OkStatus();
}

Result<uint64_t> BucketStore::WriteBucket(std::span<const WriteItem> items) {
  if (items.empty()) return InvalidArgumentError("bucket store: WriteBucket needs an item");
  if (items.size() > kMaxObjects) {
    return InvalidArgumentError("bucket store: " + std::to_string(items.size()) +
                                " items in one bucket, at most " + std::to_string(kMaxObjects));
  }
  uint64_t index_bytes = 0;
  {
    std::unordered_set<std::string_view> seen;
    for (const WriteItem& item : items) {
      if (item.key.empty() || item.key.size() > kMaxKeyBytes) {
        return InvalidArgumentError("bucket store: a key must have 1.." +
                                    std::to_string(kMaxKeyBytes) + " bytes, not " +
                                    std::to_string(item.key.size()));
      }
      if (!seen.insert(item.key).second) {
        return InvalidArgumentError("bucket store: key '" + item.key + "' twice in one bucket");
      }
      index_bytes += kIndexEntryFixedBytes + item.key.size();
    }
  }
  if (index_bytes > kMaxIndexBytes) {
    return InvalidArgumentError("bucket store: the keys need an index of " +
                                std::to_string(index_bytes) + " bytes, at most " +
                                std::to_string(kMaxIndexBytes));
  }

  uint64_t id = 0;
  {
    MutexLock lock(&mu_);
    id = next_id_++;
    FERRY_RETURN_IF_ERROR(RecordHighestId(id));
  }

  // Header, then each object padded to kAlignment, then the index and the footer.
  std::string header;
  header.reserve(kHeaderBytes);
  header.append(kHeaderMagic);
  PutU32(&header, kVersion);
  PutU32(&header, 0);
  PutU64(&header, id);
  PutU64(&header, static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count()));
  PutU64(&header, internal::Checksum(header.data(), kHeaderChecked));
  header.resize(kHeaderBytes, '\0');

  std::vector<iovec> iov;
  iov.reserve(2 * items.size() + 3);
  iov.push_back(Iov(header.data(), header.size()));
  std::string index;
  index.reserve(index_bytes);
  std::vector<Location> locs(items.size());
  uint64_t offset = kHeaderBytes;
  internal::ChecksumStream stream;
  for (size_t i = 0; i < items.size(); ++i) {
    stream.Reset();
    uint64_t size = 0;
    for (const auto& part : items[i].parts) {
      if (part.empty()) continue;
      stream.Update(part.data(), part.size());
      iov.push_back(Iov(part.data(), part.size()));
      size += part.size();
    }
    if (const uint64_t pad = AlignUp(size) - size; pad > 0) iov.push_back(Iov(kZeros, pad));
    locs[i] = Location{id, offset, size, stream.Digest()};
    PutU32(&index, static_cast<uint32_t>(items[i].key.size()));
    index.append(items[i].key);
    PutU64(&index, offset);
    PutU64(&index, size);
    PutU64(&index, locs[i].checksum);
    offset += AlignUp(size);
  }
  std::string footer;
  PutU64(&footer, offset);
  PutU64(&footer, index.size());
  PutU64(&footer, items.size());
  PutU64(&footer, internal::Checksum(index.data(), index.size()));
  footer.append(kFooterMagic);
  iov.push_back(Iov(index.data(), index.size()));
  iov.push_back(Iov(footer.data(), footer.size()));
  const uint64_t file_bytes = offset + index.size() + footer.size();

  const std::string temp = BucketPath(id, /*temp=*/true);
  const std::string path = BucketPath(id, /*temp=*/false);
  auto file = std::make_shared<BucketFile>();
  file->path = path;
  file->fd.Reset(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!file->fd.valid()) return IoError(errno, "cannot create", temp);
  Status s = PwritevAll(file->fd.get(), iov, temp);
  if (s.ok() && ::fdatasync(file->fd.get()) != 0) s = IoError(errno, "cannot fdatasync", temp);
  bool renamed = false;
  if (s.ok()) {
    if (::rename(temp.c_str(), path.c_str()) != 0) {
      s = IoError(errno, "cannot rename", temp);
    } else {
      renamed = true;
      s = FsyncDir(options_.path);
    }
  }
  if (!s.ok()) {
    file->fd.Reset();
    ::unlink(renamed ? path.c_str() : temp.c_str());
    return s;
  }
  if (options_.direct_io)
    file->direct_fd.Reset(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));

  std::vector<std::string> emptied;
  {
    MutexLock log_lock(&log_mu_);
    std::vector<Tombstone> killed;  // copies this bucket replaces (or that replace its own)
    {
      MutexLock lock(&mu_);
      Bucket& bucket = buckets_[id];
      bucket.file = std::move(file);
      bucket.file_bytes = file_bytes;
      bytes_ += file_bytes;
      for (size_t i = 0; i < items.size(); ++i) {
        InstallLocked(items[i].key, locs[i], &emptied, &killed);
      }
      if (auto it = buckets_.find(id); it != buckets_.end() && it->second.live_keys.empty()) {
        emptied.push_back(ForgetBucketLocked(it));  // every key is held by a later bucket
      }
      ++bucket_writes_;
      write_bytes_ += file_bytes;
    }
    // Until these are durable the new bucket, which wins at Open, keeps the old copies dead;
    // it cannot be removed or dropped before (those calls hold log_mu_ and sync first).
    PersistLocked(killed);
    MaybeCompactLocked();
  }
  for (const std::string& p : emptied) ::unlink(p.c_str());
  return id;
}

Result<size_t> BucketStore::Read(std::string_view key, void* dst, size_t capacity) {
  Location loc;
  std::shared_ptr<BucketFile> file;
  {
    MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) {
      return NotFoundError("bucket store: no object '" + std::string(key) + "'");
    }
    loc = it->second;
    file = buckets_.at(loc.bucket).file;
  }
  if (capacity < loc.size) {
    return InvalidArgumentError("bucket store: object '" + std::string(key) + "' has " +
                                std::to_string(loc.size) + " bytes, the buffer " +
                                std::to_string(capacity));
  }
  char* out = static_cast<char*>(dst);
  uint64_t done = 0;
  if (file->direct_fd.valid() && reinterpret_cast<uintptr_t>(dst) % kAlignment == 0) {
    const uint64_t direct = loc.size & ~(kAlignment - 1);
    const int err = direct > 0 ? PreadFull(file->direct_fd.get(), out, direct, loc.offset) : 0;
    if (err == 0) done = direct;  // else EINVAL (alignment the device refuses) or worse:
  }                               // the buffered read below tells
  Status s;
  bool mismatch = false;
  if (int err = PreadFull(file->fd.get(), out + done, loc.size - done, loc.offset + done);
      err != 0) {
    if (err > 0) return IoError(err, "cannot read", file->path);
    s = DataLossError("bucket store: " + file->path + " is truncated: object '" + std::string(key) +
                      "' at offset " + std::to_string(loc.offset) + " cut");
  } else if (internal::Checksum(dst, loc.size) != loc.checksum) {
    mismatch = true;
    s = DataLossError("bucket store: checksum mismatch reading object '" + std::string(key) +
                      "' at offset " + std::to_string(loc.offset) + " of " + file->path +
                      "; the object is dropped");
  }
  if (!s.ok()) {
    FERRY_LOG_WARN("{}", s.message());
    std::optional<std::string> emptied;
    {
      MutexLock log_lock(&log_mu_);
      std::vector<Tombstone> killed;
      {
        MutexLock lock(&mu_);
        auto it = objects_.find(key);
        if (it != objects_.end() && it->second.bucket == loc.bucket &&
            it->second.offset == loc.offset) {
          if (mismatch) ++checksum_errors_;
          if (KillCopyLocked(loc.bucket, it->first))
            killed.push_back(Tombstone{loc.bucket, it->first});
          emptied = EraseLocked(it);
        }
      }
      PersistLocked(killed);
    }
    if (emptied) ::unlink(emptied->c_str());
    return s;
  }
  reads_.fetch_add(1, std::memory_order_relaxed);
  read_bytes_.fetch_add(loc.size, std::memory_order_relaxed);
  return static_cast<size_t>(loc.size);
}

std::optional<uint64_t> BucketStore::SizeOf(std::string_view key) const {
  MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second.size;
}

Status BucketStore::Remove(std::string_view key) {
  const std::string k(key);
  FERRY_ASSIGN_OR_RETURN(const size_t removed, RemoveBatch({&k, 1}));
  if (removed == 0) return NotFoundError("bucket store: no object '" + k + "'");
  return OkStatus();
}

Result<size_t> BucketStore::RemoveBatch(std::span<const std::string> keys) {
  std::vector<std::string> emptied;
  size_t removed = 0;
  {
    MutexLock log_lock(&log_mu_);
    FERRY_RETURN_IF_ERROR(SyncLogLocked());
    std::vector<Tombstone> records;
    {
      MutexLock lock(&mu_);
      std::unordered_set<std::string_view> seen;
      for (const std::string& key : keys) {
        if (!seen.insert(key).second) continue;
        if (auto it = objects_.find(key); it != objects_.end()) {
          records.push_back(Tombstone{it->second.bucket, key});
        }
      }
    }
    if (records.empty()) return size_t{0};
    // Durable first; the index cannot change meanwhile (every change holds log_mu_).
    const Status s = log_->Append(records);
    log_file_bytes_.store(log_->bytes(), std::memory_order_relaxed);
    FERRY_RETURN_IF_ERROR(s);
    {
      MutexLock lock(&mu_);
      for (const Tombstone& t : records) {
        auto it = objects_.find(t.key);
        if (it == objects_.end() || it->second.bucket != t.bucket) continue;
        KillCopyLocked(t.bucket, t.key);
        if (auto path = EraseLocked(it)) emptied.push_back(std::move(*path));
        ++removed;
      }
    }
    MaybeCompactLocked();
  }
  for (const std::string& path : emptied) {
    if (::unlink(path.c_str()) != 0) {
      FERRY_LOG_WARN("bucket store: cannot remove {}: {}", path, ErrnoText(errno));
    }
  }
  return removed;
}

std::vector<DiskObject> BucketStore::List() const {
  MutexLock lock(&mu_);
  std::vector<DiskObject> out;
  out.reserve(objects_.size());
  for (const auto& [key, loc] : objects_) out.push_back(DiskObject{key, loc.size, loc.bucket});
  return out;
}

Result<std::vector<uint64_t>> BucketStore::PlanEviction(uint64_t incoming) const {
  MutexLock lock(&mu_);
  std::vector<uint64_t> victims;
  if (options_.capacity == 0 || bytes_ + incoming <= options_.capacity) return victims;
  if (incoming > options_.capacity) {
    return ResourceExhaustedError("bucket store: a bucket of " + std::to_string(incoming) +
                                  " bytes does not fit in the capacity of " +
                                  std::to_string(options_.capacity) + " bytes");
  }
  const uint64_t need = bytes_ + incoming - options_.capacity;
  uint64_t freed = 0;
  for (const auto& [id, bucket] : buckets_) {
    if (freed >= need) break;
    victims.push_back(id);
    freed += bucket.file_bytes;
  }
  return victims;
}

std::vector<std::string> BucketStore::KeysOf(uint64_t bucket) const {
  MutexLock lock(&mu_);
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) return {};
  return std::vector<std::string>(it->second.live_keys.begin(), it->second.live_keys.end());
}

Status BucketStore::DropBucket(uint64_t bucket) {
  MutexLock log_lock(&log_mu_);
  // A pending record may be what keeps an older copy of this bucket's keys dead.
  FERRY_RETURN_IF_ERROR(SyncLogLocked());
  {
    MutexLock lock(&mu_);
    auto it = buckets_.find(bucket);
    if (it == buckets_.end()) {
      return NotFoundError("bucket store: no bucket " + std::to_string(bucket));
    }
    if (::unlink(it->second.file->path.c_str()) != 0 && errno != ENOENT) {
      return IoError(errno, "cannot remove", it->second.file->path);
    }
    for (const std::string& key : it->second.live_keys) {
      auto obj = objects_.find(key);
      live_bytes_ -= obj->second.size;
      objects_.erase(obj);
    }
    ForgetBucketLocked(it);
  }
  // The file's removal is durable before its records can be compacted away.
  FERRY_RETURN_IF_ERROR(FsyncDir(options_.path));
  MaybeCompactLocked();
  return OkStatus();
}

BucketStore::Stats BucketStore::stats() const {
  MutexLock lock(&mu_);
  Stats s;
  s.bytes = bytes_;
  s.objects = objects_.size();
  s.live_bytes = live_bytes_;
  s.buckets = buckets_.size();
  s.bucket_writes = bucket_writes_;
  s.write_bytes = write_bytes_;
  s.reads = reads_.load(std::memory_order_relaxed);
  s.read_bytes = read_bytes_.load(std::memory_order_relaxed);
  s.checksum_errors = checksum_errors_;
  s.dropped_at_open = dropped_at_open_;
  s.tombstones = tombstones_;
  s.tombstone_bytes = log_file_bytes_.load(std::memory_order_relaxed);
  s.tombstone_rewrites = log_rewrites_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace ferry::store
