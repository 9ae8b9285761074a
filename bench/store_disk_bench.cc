// store_disk_bench: the SSD tier's BucketStore (src/store/disk/bucket_store.h) on a real
// directory: offload write throughput, read-back throughput (buffered and O_DIRECT), the
// check at Open, and small-object read ops/s. bench/store_disk_bench.sh runs it next to dd
// and fio on the same directory and prints the ratios.
//
//   store_disk_bench [--dir /tmp/ferry_disk_bench] [--total_mib 1024] [--object_kib 1024]
//                    [--bucket_mib 64] [--small_kib 64] [--small_total_mib 256]
//                    [--drop_caches] [--json FILE]
//
// Rows (one JSON object each on stdout, and a table):
//   write         --total_mib of --object_kib objects in buckets of --bucket_mib, one
//                 WriteBucket per bucket (pwritev, fdatasync, rename, fsync of the directory)
//   read          every object once in write order, buffered (direct_io off)
//   open          reopening the store: Open reads every object to check its checksum
//   read_direct   the same reads with direct_io on, into 4096-aligned buffers
//   small_write / small_read / small_read_direct   the same with --small_kib objects
//                 (--small_total_mib in all), read once each in a random order: ops/s
// With --drop_caches, the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches)
// before every read row, so reads come from the device; the rows say whether that worked.
// Without it, a buffered read right after the write mostly hits the page cache.
#include <sys/vfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "common/log.h"
#include "store/disk/bucket_store.h"

namespace {

using ferry::store::BucketStore;
using ferry::store::BucketStoreOptions;
using nlohmann::json;
namespace fs = std::filesystem;

struct Config {
  std::string dir = "/tmp/ferry_disk_bench";
  uint64_t total_mib = 1024;
  uint64_t object_kib = 1024;
  uint64_t bucket_mib = 64;
  uint64_t small_kib = 64;
  uint64_t small_total_mib = 256;
  bool drop_caches = false;
  std::string json_path;
};

// sync, then drops the page cache. Returns false where /proc/sys/vm/drop_caches is not
// writable (not root, or a container).
bool DropCaches() {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!f) return false;
  f << "3\n";
  f.flush();
  return f.good();
}

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size((n + 4095) & ~size_t{4095}) {
    data = static_cast<std::byte*>(std::aligned_alloc(4096, size));
  }
  ~AlignedBuffer() { std::free(data); }
  std::byte* data;
  size_t size;
};

std::unique_ptr<BucketStore> OpenStore(const std::string& path, bool direct_io) {
  BucketStoreOptions o;
  o.path = path;
  o.direct_io = direct_io;
  auto store = BucketStore::Open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "store_disk_bench: %s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

// Writes `count` objects of `object_bytes` named prefix<i>, `per_bucket` a bucket; seconds.
double WriteObjects(BucketStore* store, const std::string& prefix, uint64_t count,
                    uint64_t object_bytes, uint64_t per_bucket) {
  // One source buffer per object slot in a bucket, random bytes (checksums do real work).
  std::vector<std::vector<std::byte>> source(per_bucket, std::vector<std::byte>(object_bytes));
  std::mt19937_64 rng(1);
  for (auto& s : source) {
    for (size_t i = 0; i + 8 <= s.size(); i += 8) {
      const uint64_t v = rng();
      std::memcpy(s.data() + i, &v, 8);
    }
  }
  const double start = ferry::bench::NowSeconds();
  for (uint64_t first = 0; first < count; first += per_bucket) {
    std::vector<BucketStore::WriteItem> items;
    for (uint64_t i = first; i < std::min(count, first + per_bucket); ++i) {
      items.push_back(
          {prefix + std::to_string(i), {std::span<const std::byte>(source[i - first])}});
    }
    auto id = store->WriteBucket(items);
    if (!id.ok()) {
      std::fprintf(stderr, "store_disk_bench: %s\n", id.status().ToString().c_str());
      std::exit(1);
    }
  }
  return ferry::bench::NowSeconds() - start;
}

// Reads prefix<i> for each i in `order`; seconds.
double ReadObjects(BucketStore* store, const std::string& prefix,
                   const std::vector<uint64_t>& order, uint64_t object_bytes) {
  AlignedBuffer buf(object_bytes);
  const double start = ferry::bench::NowSeconds();
  for (uint64_t i : order) {
    auto n = store->Read(prefix + std::to_string(i), buf.data, buf.size);
    if (!n.ok() || *n != object_bytes) {
      std::fprintf(stderr, "store_disk_bench: read %s%llu: %s\n", prefix.c_str(),
                   static_cast<unsigned long long>(i), n.status().ToString().c_str());
      std::exit(1);
    }
  }
  return ferry::bench::NowSeconds() - start;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"store_disk_bench: BucketStore write and read throughput on a directory"};
  app.add_option("--dir", c.dir, "Directory to benchmark in (a store subdirectory is made)")
      ->capture_default_str();
  app.add_option("--total_mib", c.total_mib, "MiB of large objects written and read")
      ->capture_default_str();
  app.add_option("--object_kib", c.object_kib, "Large object size")->capture_default_str();
  app.add_option("--bucket_mib", c.bucket_mib, "Bucket size (objects per WriteBucket)")
      ->capture_default_str();
  app.add_option("--small_kib", c.small_kib, "Small object size")->capture_default_str();
  app.add_option("--small_total_mib", c.small_total_mib, "MiB of small objects (0: skip)")
      ->capture_default_str();
  app.add_flag("--drop_caches", c.drop_caches, "Drop the page cache before every read row");
  app.add_option("--json", c.json_path, "Also write every row to this file");
  CLI11_PARSE(app, argc, argv);
  (void)ferry::SetLogLevel("warn");

  const std::string path = (fs::path(c.dir) / "ferry_store").string();
  std::error_code ec;
  fs::remove_all(path, ec);
  fs::create_directories(c.dir, ec);
  const std::string fs_type = ferry::bench::FsType(c.dir);
  json rows = json::array();
  std::printf("store_disk_bench: %s (%s), %llu MiB of %llu KiB objects, %llu MiB buckets\n",
              c.dir.c_str(), fs_type.c_str(), static_cast<unsigned long long>(c.total_mib),
              static_cast<unsigned long long>(c.object_kib),
              static_cast<unsigned long long>(c.bucket_mib));
  std::printf("%-18s %10s %12s %12s %12s\n", "row", "MiB", "seconds", "GB/s", "ops/s");
  auto report = [&](const std::string& test, uint64_t bytes, uint64_t ops, double seconds,
                    int dropped) {
    const double gbps = static_cast<double>(bytes) / seconds / 1e9;
    const double opss = static_cast<double>(ops) / seconds;
    json row = {{"bench", "store_disk"}, {"test", test},     {"bytes", bytes},    {"ops", ops},
                {"seconds", seconds},    {"gb_per_s", gbps}, {"ops_per_s", opss}, {"fs", fs_type},
                {"dir", c.dir}};
    if (dropped >= 0) row["page_cache_dropped"] = dropped == 1;
    std::printf("%-18s %10.0f %12.3f %12.3f %12.0f\n", test.c_str(),
                static_cast<double>(bytes) / (1 << 20), seconds, gbps, opss);
    std::printf("%s\n", row.dump().c_str());
    rows.push_back(std::move(row));
  };
  auto drop = [&]() -> int { return c.drop_caches ? (DropCaches() ? 1 : 0) : -1; };

  const uint64_t object_bytes = c.object_kib << 10;
  const uint64_t count = (c.total_mib << 20) / object_bytes;
  const uint64_t per_bucket = std::max<uint64_t>(1, (c.bucket_mib << 20) / object_bytes);
  std::vector<uint64_t> in_order(count);
  for (uint64_t i = 0; i < count; ++i) in_order[i] = i;
  {
    auto store = OpenStore(path, false);
    const double w = WriteObjects(store.get(), "big", count, object_bytes, per_bucket);
    report("write", count * object_bytes, count, w, -1);
    const int dropped = drop();
    report("read", count * object_bytes, count,
           ReadObjects(store.get(), "big", in_order, object_bytes), dropped);
  }
  {
    const int dropped = drop();
    const double start = ferry::bench::NowSeconds();
    auto store = OpenStore(path, true);
    report("open", count * object_bytes, store->stats().objects, ferry::bench::NowSeconds() - start,
           dropped);
    const int dropped2 = drop();
    report("read_direct", count * object_bytes, count,
           ReadObjects(store.get(), "big", in_order, object_bytes), dropped2);
  }
  fs::remove_all(path, ec);  // the small rows start from an empty store
  if (c.small_total_mib > 0) {
    const uint64_t small_bytes = c.small_kib << 10;
    const uint64_t small_count = (c.small_total_mib << 20) / small_bytes;
    const uint64_t small_per_bucket = std::max<uint64_t>(1, (c.bucket_mib << 20) / small_bytes);
    std::vector<uint64_t> shuffled(small_count);
    for (uint64_t i = 0; i < small_count; ++i) shuffled[i] = i;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(7));
    {
      auto store = OpenStore(path, false);
      report("small_write", small_count * small_bytes, small_count,
             WriteObjects(store.get(), "small", small_count, small_bytes, small_per_bucket), -1);
      const int dropped = drop();
      report("small_read", small_count * small_bytes, small_count,
             ReadObjects(store.get(), "small", shuffled, small_bytes), dropped);
    }
    auto store = OpenStore(path, true);
    const int dropped = drop();
    report("small_read_direct", small_count * small_bytes, small_count,
           ReadObjects(store.get(), "small", shuffled, small_bytes), dropped);
  }
  fs::remove_all(path, ec);
  if (!c.json_path.empty()) std::ofstream(c.json_path) << rows.dump(2) << "\n";
  return 0;
}
