#include "store/disk/internal/tombstone_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "store/disk/internal/checksum.h"

namespace ferry::store::internal {
namespace {

constexpr std::string_view kMagic = "FERRYTMB";
constexpr uint32_t kVersion = 1;
constexpr size_t kReadChunk = 1 << 20;  // Open reads the file in pieces of this size

Status IoError(int err, std::string_view what, const std::string& path) {
  std::string msg = "tombstone log: " + std::string(what) + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return ResourceExhaustedError("disk full: " + msg);
  return InternalError(std::move(msg));
}

std::string Header() {
  std::string h(kMagic);
  const uint32_t fields[2] = {kVersion, 0};
  h.append(reinterpret_cast<const char*>(fields), sizeof(fields));
  return h;
}

void PutRecord(std::string* out, uint64_t bucket, std::string_view key) {
  const size_t start = out->size();
  const auto len = static_cast<uint32_t>(key.size());
  out->append(reinterpret_cast<const char*>(&bucket), 8);
  out->append(reinterpret_cast<const char*>(&len), 4);
  out->append(key);
  const uint64_t sum = Checksum(out->data() + start, out->size() - start);
  out->append(reinterpret_cast<const char*>(&sum), 8);
}

Status Encode(std::span<const Tombstone> records, std::string* out) {
  for (const Tombstone& t : records) {
    if (t.key.empty() || t.key.size() > TombstoneLog::kMaxKeyBytes) {
      return InvalidArgumentError("tombstone log: a key must have 1.." +
                                  std::to_string(TombstoneLog::kMaxKeyBytes) + " bytes, not " +
                                  std::to_string(t.key.size()));
    }
    PutRecord(out, t.bucket, t.key);
  }
  return OkStatus();
}

// Writes all of `data` at `offset`. Returns 0 or errno.
int PwriteFull(int fd, const char* data, size_t len, uint64_t offset) {
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// Reads up to `len` bytes at `offset` (fewer only at the end of the file). Returns the count
// or -errno.
ssize_t PreadSome(int fd, char* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

Status FsyncDirOf(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return IoError(errno, "cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return IoError(errno, "cannot fsync directory", dir);
  return OkStatus();
}

// Cuts the file to `length` bytes, writing a fresh header first when length is 0.
Status Repair(int fd, uint64_t length, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(length)) != 0) {
    return IoError(errno, "cannot truncate", path);
  }
  if (length == 0) {
    const std::string header = Header();
    if (int err = PwriteFull(fd, header.data(), header.size(), 0); err != 0) {
      return IoError(err, "cannot write", path);
    }
  }
  if (::fdatasync(fd) != 0) return IoError(errno, "cannot fdatasync", path);
  return OkStatus();
}

}  // namespace

TombstoneLog::TombstoneLog(std::string path, UniqueFd fd, uint64_t bytes)
    : path_(std::move(path)), fd_(std::move(fd)), bytes_(bytes) {}

TombstoneLog::~TombstoneLog() = default;

Result<std::unique_ptr<TombstoneLog>> TombstoneLog::Open(
    const std::string& path, const std::function<void(uint64_t, std::string_view)>& visit,
    uint64_t* ignored_bytes) {
  if (ignored_bytes != nullptr) *ignored_bytes = 0;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError(errno, "cannot open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError(errno, "cannot stat", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {  // new (or created by a crash before its header was synced)
    FERRY_RETURN_IF_ERROR(Repair(fd.get(), 0, path));
    FERRY_RETURN_IF_ERROR(FsyncDirOf(path));
    return std::unique_ptr<TombstoneLog>(new TombstoneLog(path, std::move(fd), kHeaderBytes));
  }

  // `buf` holds the file's bytes [buf_start, buf_start + buf.size()).
  std::string buf;
  uint64_t buf_start = 0;
  // Makes [pos, pos + n) available in buf; false when the file ends first.
  auto fill = [&](uint64_t pos, uint64_t n, Status* s) -> bool {
    if (pos + n <= buf_start + buf.size()) return true;
    if (pos + n > size) return false;
    buf.erase(0, static_cast<size_t>(pos - buf_start));
    buf_start = pos;
    const size_t have = buf.size();
    const size_t want = static_cast<size_t>(std::max<uint64_t>(n, kReadChunk)) - have;
    buf.resize(have + want);
    const ssize_t got = PreadSome(fd.get(), buf.data() + have, want, pos + have);
    if (got < 0) {
      *s = IoError(static_cast<int>(-got), "cannot read", path);
      buf.resize(have);
      return false;
    }
    buf.resize(have + static_cast<size_t>(got));
    return pos + n <= buf_start + buf.size();
  };
  auto at = [&](uint64_t pos) { return buf.data() + (pos - buf_start); };

  Status s;
  uint64_t valid = 0;  // bytes of the file that are a header and whole valid records
  std::string why;
  if (!fill(0, kHeaderBytes, &s)) {
    why = "header cut";
  } else if (std::string_view(at(0), kHeaderBytes) != Header()) {
    why = "bad header";
  } else {
    valid = kHeaderBytes;
    for (uint64_t count = 0; valid < size; ++count) {
      if (count == kMaxRecords) {
        why = "more than " + std::to_string(kMaxRecords) + " records";
        break;
      }
      if (!fill(valid, kRecordFixedBytes - 8, &s)) {
        why = "record cut";
        break;
      }
      uint64_t bucket;
      uint32_t key_len;
      std::memcpy(&bucket, at(valid), 8);
      std::memcpy(&key_len, at(valid + 8), 4);
      if (key_len == 0 || key_len > kMaxKeyBytes) {
        why = "key length " + std::to_string(key_len) + " out of range";
        break;
      }
      const uint64_t record = RecordBytes(key_len);
      if (!fill(valid, record, &s)) {
        why = "record cut";
        break;
      }
      uint64_t sum;
      std::memcpy(&sum, at(valid + record - 8), 8);
      if (Checksum(at(valid), record - 8) != sum) {
        why = "record checksum mismatch";
        break;
      }
      visit(bucket, std::string_view(at(valid + 12), key_len));
      valid += record;
    }
  }
  if (!s.ok()) return s;
  if (valid < size) {
    FERRY_LOG_WARN("tombstone log: {}: {} at offset {}; ignoring its last {} bytes", path, why,
                   valid, size - valid);
    if (ignored_bytes != nullptr) *ignored_bytes = size - valid;
    FERRY_RETURN_IF_ERROR(Repair(fd.get(), valid, path));
    if (valid == 0) valid = kHeaderBytes;
  }
  return std::unique_ptr<TombstoneLog>(new TombstoneLog(path, std::move(fd), valid));
}

Status TombstoneLog::Append(std::span<const Tombstone> records) {
  if (broken_) {
    return FailedPreconditionError("tombstone log: " + path_ +
                                   " could not be cut back after a failed append; rewrite it");
  }
  std::string data;
  FERRY_RETURN_IF_ERROR(Encode(records, &data));
  if (data.empty()) return OkStatus();
  int err = PwriteFull(fd_.get(), data.data(), data.size(), bytes_);
  Status s;
  if (err != 0) {
    s = IoError(err, "cannot write", path_);
  } else if (::fdatasync(fd_.get()) != 0) {
    s = IoError(errno, "cannot fdatasync", path_);
  }
  if (!s.ok()) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(bytes_)) != 0) broken_ = true;
    return s;
  }
  bytes_ += data.size();
  return OkStatus();
}

Status TombstoneLog::Rewrite(std::span<const Tombstone> records) {
  std::string data = Header();
  FERRY_RETURN_IF_ERROR(Encode(records, &data));
  const std::string temp = path_ + ".tmp";
  UniqueFd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError(errno, "cannot create", temp);
  Status s;
  if (int err = PwriteFull(fd.get(), data.data(), data.size(), 0); err != 0) {
    s = IoError(err, "cannot write", temp);
  } else if (::fdatasync(fd.get()) != 0) {
    s = IoError(errno, "cannot fdatasync", temp);
  } else if (::rename(temp.c_str(), path_.c_str()) != 0) {
    s = IoError(errno, "cannot rename", temp);
  }
  if (!s.ok()) {
    ::unlink(temp.c_str());
    return s;
  }
  // The new file is in use from here on, also when the directory sync fails (its error is
  // returned: the rename may not survive a crash).
  fd_ = std::move(fd);
  bytes_ = data.size();
  broken_ = false;
  return FsyncDirOf(path_);
}

}  // namespace ferry::store::internal
