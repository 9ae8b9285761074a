#include "store/master/file_log_storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "common/log.h"
#include "common/mutex.h"
#include "store/master/metadata_log.h"

namespace ferry::store {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kWalMagic = "FERRYWAL";
constexpr std::string_view kSnapshotName = "snapshot";
constexpr std::string_view kSnapshotTmpName = "snapshot.tmp";

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

FileLogStorage::~FileLogStorage() {
  MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
}

Status FileLogStorage::Load(RecoveredMetadata* recovered) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return UnavailableError("metadata log: cannot create " + dir_ + ": " + ec.message());
  fs::remove(fs::path(dir_) / kSnapshotTmpName, ec);  // a snapshot never renamed

  const std::string snap_path = (fs::path(dir_) / kSnapshotName).string();
  if (fs::exists(snap_path, ec)) {
    std::ifstream in(snap_path, std::ios::binary);
    if (!in) return UnavailableError(Errno("cannot open", snap_path));
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    FERRY_RETURN_IF_ERROR(recovered->ApplySnapshot(data, snap_path));
  }

  const std::map<uint64_t, std::string> logs = ListLogs(dir_);
  for (auto it = logs.begin(); it != logs.end(); ++it) {
    const bool newest = std::next(it) == logs.end();
    FERRY_ASSIGN_OR_RETURN(ParsedLog log, MetadataLog::ReadFile(it->second, kWalMagic, newest));
    FERRY_RETURN_IF_ERROR(recovered->Replay(log, it->second));
    if (log.torn_tail) {
      FERRY_LOG_WARN("metadata log: {}: dropped a torn record at offset {} (a crash mid-write)",
                     it->second, log.valid_bytes);
      recovered->dropped_torn_tail = true;
      if (::truncate(it->second.c_str(), static_cast<off_t>(log.valid_bytes)) != 0) {
        return UnavailableError(Errno("metadata log: cannot truncate", it->second));
      }
    }
  }
  MutexLock lock(&mu_);
  return OpenLogFile(recovered->last_seq + 1);
}

Status FileLogStorage::OpenLogFile(uint64_t first_seq) {
  const std::string path = (fs::path(dir_) / WalName(first_seq)).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(Errno("metadata log: cannot create", path));
  Status s = WriteAll(fd, MetadataLog::LogFileHeader(), path);
  if (s.ok() && ::fdatasync(fd) != 0) s = UnavailableError(Errno("cannot fdatasync", path));
  if (s.ok()) s = FsyncDir(dir_);
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return OkStatus();
}

Status FileLogStorage::Append(uint64_t, uint64_t, std::string_view records) {
  MutexLock lock(&mu_);
  const std::string what = dir_ + "/wal";
  FERRY_RETURN_IF_ERROR(WriteAll(fd_, records, what));
  if (::fdatasync(fd_) != 0) return InternalError(Errno("cannot fdatasync", what));
  return OkStatus();
}

Status FileLogStorage::Rotate(uint64_t first_seq) {
  MutexLock lock(&mu_);
  return OpenLogFile(first_seq);
}

Status FileLogStorage::WriteSnapshot(uint64_t last_seq, std::string_view snapshot) {
  const std::string tmp = (fs::path(dir_) / kSnapshotTmpName).string();
  const std::string path = (fs::path(dir_) / kSnapshotName).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(Errno("snapshot: cannot create", tmp));
  Status s = WriteAll(fd, snapshot, tmp);
  if (s.ok() && ::fsync(fd) != 0) s = UnavailableError(Errno("snapshot: cannot fsync", tmp));
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = UnavailableError(Errno("snapshot: cannot rename", tmp));
  }
  if (s.ok()) s = FsyncDir(dir_);
  if (!s.ok()) return s;
  // The logs the snapshot covers: every file before the one that starts after last_seq.
  for (const auto& [first, name] : ListLogs(dir_)) {
    if (first <= last_seq) {
      std::error_code ec;
      fs::remove(name, ec);
    }
  }
  return OkStatus();
}

}  // namespace ferry::store
