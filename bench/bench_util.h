// Small helpers shared by the baseline programs in bench/ (no Ferry dependency, so that a
// baseline measures only the kernel and the CPU).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/vfs.h>

namespace ferry::bench {

// The file system `dir` is on: "ext4", "tmpfs", "xfs", "btrfs", "overlayfs", else
// "fs-0x<magic>" ("unknown" when statfs fails).
inline std::string FsType(const std::string& dir) {
  struct statfs s;
  if (statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794C7630:
      return "overlayfs";
    default:
      return "fs-0x" + std::to_string(static_cast<unsigned long>(s.f_type));
  }
}

// "4096", "64K", "1M", "4MiB", "1G" -> bytes (K = 1024). Returns 0 on malformed input.
inline uint64_t ParseBytes(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return 0;
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  uint64_t mul = 1;
  if (unit.empty() || unit == "B") {
    mul = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    mul = 1ull << 10;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    mul = 1ull << 20;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    mul = 1ull << 30;
  } else {
    return 0;
  }
  return static_cast<uint64_t>(v * static_cast<double>(mul));
}

// The q-quantile (0..1) of `v` (sorted in place); 0 for an empty vector.
inline double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Value of "--name" in argv (or `fallback`).
inline std::string Flag(int argc, char** argv, const std::string& name,
                        const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace ferry::bench
