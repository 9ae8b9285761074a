// store_wal_bench: what `ferry master --data_dir` (the metadata write-ahead log, group
// commit, fdatasync before every reply) costs a writer, measured in one run.
//
//   store_wal_bench [--seconds 3] [--sizes 4K,1M] [--batches 1,32] [--writers 1]
//                   [--data_dir DIR] [--segment 256M] [--protocol tcp] [--json FILE]
//
// For each object size and batch (keys per call): a MasterServer in this process on
// 127.0.0.1, a member Client lending --segment bytes and --writers writer Clients (one
// thread each), all in this process over --protocol. The writers put (BatchPut with `batch`
// keys, or Put for 1) for --seconds in rounds: a round fills about half the segment with
// fresh keys (timed), then RemoveAll frees it (not timed). With several writers their
// PutEnds share fdatasyncs (group commit). Twice per row: without a data_dir (memory only) and with
// one (a fresh directory under --data_dir, default /var/tmp), against a fresh master each
// time. Prints objects/s and GB/s of both, the ratio durable / memory (target >= 0.7 for
// the batched rows), the master's log commits and records per commit, one JSON object a
// row, and the file system the log lives on (an fdatasync on tmpfs costs nothing).
// Commits and records per commit count the whole durable run, RemoveAll rounds included.
#include <sys/vfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/log.h"
#include "store/client.h"
#include "store/master/master_server.h"

namespace {

using ferry::store::Client;
using ferry::store::ClientOptions;
using ferry::store::MasterServer;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr double kTargetRatio = 0.7;

struct Config {
  double seconds = 3;
  std::string sizes = "4K,1M";
  std::string batches = "1,32";
  std::string data_dir = "/var/tmp";
  std::string segment = "256M";
  std::string protocol = "tcp";
  int writers = 1;
  std::string json_path;
};

struct Row {
  double objects_per_s = 0;
  double gb_per_s = 0;
  uint64_t failures = 0;
  uint64_t commits = 0;
  uint64_t records = 0;
  double commit_ms = 0;  // mean write + fdatasync
};

std::vector<uint64_t> ParseList(const std::string& text) {
  std::vector<uint64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(ferry::bench::ParseBytes(item));
  return out;
}

std::string FsType(const std::string& dir) {
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

std::unique_ptr<Client> MakeClient(const MasterServer& master, uint64_t segment,
                                   const std::string& protocol) {
  ClientOptions o;
  o.local_hostname = "127.0.0.1";
  o.master_server_address = master.rpc_address();
  o.global_segment_size = segment;
  o.protocol = protocol;
  auto c = Client::Create(o);
  if (!c.ok()) {
    std::fprintf(stderr, "client: %s\n", c.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*c);
}

Row RunCase(const Config& c, uint64_t size, uint64_t batch, const std::string& data_dir) {
  Row row;
  MasterServer::Options mo;
  mo.rpc_address = "127.0.0.1";
  mo.rpc_port = 0;
  mo.metrics_address = "127.0.0.1";
  mo.metrics_port = 0;
  mo.service.data_dir = data_dir;
  auto master = MasterServer::Start(mo);
  if (!master.ok()) {
    std::fprintf(stderr, "master: %s\n", master.status().ToString().c_str());
    row.failures = 1;
    return row;
  }
  const uint64_t segment = ferry::bench::ParseBytes(c.segment);
  auto member = MakeClient(**master, segment, c.protocol);
  std::vector<std::unique_ptr<Client>> writers;
  for (int w = 0; w < std::max(1, c.writers); ++w) {
    writers.push_back(MakeClient(**master, 0, c.protocol));
    if (!writers.back()) {
      row.failures = 1;
      return row;
    }
  }
  if (!member) {
    row.failures = 1;
    return row;
  }
  const std::string value(size, 'v');
  // Each writer's share of a round: about half the segment among all of them.
  const uint64_t per_round =
      std::max<uint64_t>(batch, (segment / 2) / size / writers.size() / batch * batch);
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> next_key{0};
  double timed = 0;
  while (timed < c.seconds) {
    const double start = ferry::bench::NowSeconds();
    const double budget = c.seconds - timed;
    std::vector<std::thread> threads;
    for (auto& writer : writers) {
      threads.emplace_back([&, w = writer.get()] {
        std::vector<std::string> keys(batch);
        std::vector<std::span<const std::byte>> values(batch, std::as_bytes(std::span(value)));
        for (uint64_t n = 0; n < per_round && ferry::bench::NowSeconds() - start < budget;
             n += batch) {
          for (auto& k : keys) k = "k" + std::to_string(next_key++);
          if (batch == 1) {
            (w->Put(keys[0], values[0]).ok() ? done : failures)++;
            continue;
          }
          for (const auto& st : w->BatchPut(keys, values)) (st.ok() ? done : failures)++;
        }
      });
    }
    for (auto& t : threads) t.join();
    timed += ferry::bench::NowSeconds() - start;
    (void)writers[0]->RemoveAll(true);
  }
  row.failures = failures.load();
  row.objects_per_s = static_cast<double>(done.load()) / timed;
  row.gb_per_s = row.objects_per_s * static_cast<double>(size) / 1e9;
  if (auto st = (*master)->service().log_stats()) {
    row.commits = st->commits;
    row.records = st->committed_records;
    row.commit_ms = st->commits ? static_cast<double>(st->commit_micros) / 1e3 /
                                      static_cast<double>(st->commits)
                                : 0;
  }
  writers.clear();
  member.reset();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"store_wal_bench: put throughput with and without the master's --data_dir"};
  app.add_option("--seconds", c.seconds, "Timed seconds per row and mode")->capture_default_str();
  app.add_option("--sizes", c.sizes, "Object sizes")->capture_default_str();
  app.add_option("--batches", c.batches, "Keys per put call")->capture_default_str();
  app.add_option("--data_dir", c.data_dir, "Where the durable runs' directories are made")
      ->capture_default_str();
  app.add_option("--segment", c.segment, "The member's segment")->capture_default_str();
  app.add_option("--protocol", c.protocol, "tcp or shm")->capture_default_str();
  app.add_option("--writers", c.writers, "Writer clients putting at once, one thread each")
      ->capture_default_str();
  app.add_option("--json", c.json_path, "Also write every figure to this file");
  CLI11_PARSE(app, argc, argv);
  (void)ferry::SetLogLevel("warn");

  std::printf(
      "store_wal_bench: log on %s (%s), %.1f s per row and mode, protocol %s, %d writer(s)\n",
      c.data_dir.c_str(), FsType(c.data_dir).c_str(), c.seconds, c.protocol.c_str(), c.writers);
  std::printf("%8s %6s %14s %14s %10s %10s %7s %8s %10s %10s\n", "size", "batch", "mem obj/s",
              "wal obj/s", "mem GB/s", "wal GB/s", "ratio", "target", "rec/commit", "commit ms");
  json all = json::array();
  bool failed = false;
  for (uint64_t size : ParseList(c.sizes)) {
    for (uint64_t batch : ParseList(c.batches)) {
      if (size == 0 || batch == 0) continue;
      std::string tmpl = (fs::path(c.data_dir) / "ferry-wal-bench-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) {
        std::fprintf(stderr, "cannot make a directory under %s: %s\n", c.data_dir.c_str(),
                     std::strerror(errno));
        return 1;
      }
      const Row mem = RunCase(c, size, batch, "");
      const Row wal = RunCase(c, size, batch, tmpl);
      std::error_code ec;
      fs::remove_all(tmpl, ec);
      const double ratio = mem.objects_per_s > 0 ? wal.objects_per_s / mem.objects_per_s : 0;
      const bool targeted = batch > 1;
      const double per_commit =
          wal.commits ? static_cast<double>(wal.records) / static_cast<double>(wal.commits) : 0;
      std::printf("%8llu %6llu %14.0f %14.0f %10.3f %10.3f %7.2f %8s %10.1f %10.3f\n",
                  static_cast<unsigned long long>(size), static_cast<unsigned long long>(batch),
                  mem.objects_per_s, wal.objects_per_s, mem.gb_per_s, wal.gb_per_s, ratio,
                  targeted ? (ratio >= kTargetRatio ? ">=0.7 ok" : ">=0.7 NO") : "-", per_commit,
                  wal.commit_ms);
      failed |= mem.failures > 0 || wal.failures > 0;
      json row = {{"size", size},
                  {"batch", batch},
                  {"memory_objects_per_s", mem.objects_per_s},
                  {"wal_objects_per_s", wal.objects_per_s},
                  {"memory_gb_per_s", mem.gb_per_s},
                  {"wal_gb_per_s", wal.gb_per_s},
                  {"ratio", ratio},
                  {"target", targeted ? kTargetRatio : 0.0},
                  {"wal_commits", wal.commits},
                  {"wal_records", wal.records},
                  {"wal_commit_ms", wal.commit_ms},
                  {"writers", c.writers},
                  {"failures", mem.failures + wal.failures},
                  {"fs", FsType(c.data_dir)}};
      std::printf("%s\n", row.dump().c_str());
      all.push_back(std::move(row));
    }
  }
  if (!c.json_path.empty()) std::ofstream(c.json_path) << all.dump(2) << "\n";
  if (failed) std::fprintf(stderr, "some puts failed\n");
  return failed ? 1 : 0;
}
