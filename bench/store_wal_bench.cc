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
//
// With --etcd ENDPOINTS, each row also runs an HA master (the log in etcd, one leader
// elected; clients given etcd://...) and prints its objects/s and ratio beside the others.
//
// With --recover_objects N (e.g. 1000000), it measures recovery instead: a MasterService in
// this process commits N objects (one segment, 64-byte objects) to a fresh --data_dir
// directory (and to etcd with --etcd), then a new MasterService is created on it and timed:
// once replaying the log alone, once from a snapshot (checkpoint) of the same state.
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
#include "metadata/etcd_client.h"
#include "store/client.h"
#include "store/ha_cluster.h"
#include "store/master/etcd_log_storage.h"
#include "store/master/master_server.h"
#include "store/master/master_service.h"

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
  std::string etcd;  // "" = no HA rows
  uint64_t recover_objects = 0;
  std::string json_path;
};

enum class Mode { kMemory, kDataDir, kEtcd };

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

std::unique_ptr<Client> MakeClient(const std::string& master, uint64_t segment,
                                   const std::string& protocol) {
  ClientOptions o;
  o.local_hostname = "127.0.0.1";
  o.master_server_address = master;
  o.global_segment_size = segment;
  o.protocol = protocol;
  auto c = Client::Create(o);
  if (!c.ok()) {
    std::fprintf(stderr, "client: %s\n", c.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*c);
}

// A cluster id of its own for each HA master, so that no run sees another's log.
std::string FreshClusterId() {
  static int n = 0;
  return "wal-bench-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

Row RunCase(const Config& c, uint64_t size, uint64_t batch, Mode mode,
            const std::string& data_dir) {
  Row row;
  MasterServer::Options mo;
  mo.rpc_address = "127.0.0.1";
  mo.rpc_port = 0;
  mo.metrics_address = "127.0.0.1";
  mo.metrics_port = 0;
  if (mode == Mode::kDataDir) mo.service.data_dir = data_dir;
  if (mode == Mode::kEtcd) {
    mo.ha.etcd_endpoints = c.etcd;
    mo.ha.cluster_id = FreshClusterId();
  }
  auto master = MasterServer::Start(mo);
  if (!master.ok()) {
    std::fprintf(stderr, "master: %s\n", master.status().ToString().c_str());
    row.failures = 1;
    return row;
  }
  std::string address = (*master)->rpc_address();
  if (mode == Mode::kEtcd) {
    for (int i = 0; i < 500 && !(*master)->leading(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    address = "etcd://" + c.etcd;
    setenv("MC_STORE_CLUSTER_ID", mo.ha.cluster_id.c_str(), 1);
  }
  const uint64_t segment = ferry::bench::ParseBytes(c.segment);
  auto member = MakeClient(address, segment, c.protocol);
  std::vector<std::unique_ptr<Client>> writers;
  for (int w = 0; w < std::max(1, c.writers); ++w) {
    writers.push_back(MakeClient(address, 0, c.protocol));
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

// Commits `n` objects to a fresh log (`storage` or `data_dir`), then times a new master's
// recovery from the log alone and from a checkpoint. Returns {log seconds, checkpoint s}.
std::pair<double, double> MeasureRecovery(uint64_t n, const std::string& data_dir,
                                          const std::string& etcd) {
  using ferry::store::MasterService;
  using ferry::store::MasterServiceOptions;
  MasterServiceOptions o;
  o.data_dir = data_dir;
  o.snapshot_every_records = UINT64_MAX;  // checkpoints only when asked
  std::shared_ptr<ferry::metadata::EtcdClient> client;
  ferry::store::EtcdLogStorage::Options eo;
  if (!etcd.empty()) {
    client = std::shared_ptr<ferry::metadata::EtcdClient>(
        ferry::metadata::EtcdClient::Create(etcd).value());
    eo.prefix = ferry::store::ClusterPrefix(FreshClusterId());
  }
  auto open = [&]() -> std::unique_ptr<MasterService> {
    auto m = etcd.empty() ? MasterService::Create(o)
                          : MasterService::Create(
                                o, std::make_unique<ferry::store::EtcdLogStorage>(client, eo));
    if (!m.ok()) {
      std::fprintf(stderr, "recovery: %s\n", m.status().ToString().c_str());
      std::exit(1);
    }
    return std::move(*m);
  };
  {
    auto m = open();
    (void)m->MountSegment({.id = "s1",
                           .name = "127.0.0.1:17000",
                           .hostname = "127.0.0.1",
                           .base = 1ull << 32,
                           .size = n * 64 + (1 << 20),
                           .client_id = "c1"});
    for (uint64_t i = 0; i < n; ++i) {
      const std::string key = "key-" + std::to_string(i);
      auto r = m->PutStart(key, 64, ferry::store::ReplicateConfig{}, "c1", "127.0.0.1",
                           ferry::store::PutMode::kInsert);
      if (r.ok()) (void)m->PutEnd(key, "c1");
      if (i % 4096 == 4095) (void)m->Sync();  // a client's batches, as they would come
    }
    if (!m->Sync().ok() || m->stats().keys != n) {
      std::fprintf(stderr, "recovery: the fill failed (%llu keys)\n",
                   static_cast<unsigned long long>(m->stats().keys));
      std::exit(1);
    }
  }
  double t = ferry::bench::NowSeconds();
  uint64_t keys = 0;
  {
    auto m = open();
    keys = m->stats().keys;
    const double from_log = ferry::bench::NowSeconds() - t;
    if (!m->Checkpoint().ok()) std::exit(1);
    m.reset();
    t = ferry::bench::NowSeconds();
    auto again = open();
    const double from_checkpoint = ferry::bench::NowSeconds() - t;
    if (keys != n || again->stats().keys != n) {
      std::fprintf(stderr, "recovery: %llu objects came back, not %llu\n",
                   static_cast<unsigned long long>(again->stats().keys),
                   static_cast<unsigned long long>(n));
      std::exit(1);
    }
    return {from_log, from_checkpoint};
  }
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
  app.add_option("--etcd", c.etcd, "Also run an HA master with its log in this etcd");
  app.add_option("--recover_objects", c.recover_objects,
                 "Measure recovery of this many objects instead of put throughput");
  app.add_option("--json", c.json_path, "Also write every figure to this file");
  CLI11_PARSE(app, argc, argv);
  (void)ferry::SetLogLevel("warn");

  if (c.recover_objects > 0) {
    std::string tmpl = (fs::path(c.data_dir) / "ferry-wal-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return 1;
    json all = json::array();
    std::printf("store_wal_bench: recovery of %llu objects\n%10s %14s %18s\n",
                static_cast<unsigned long long>(c.recover_objects), "log on", "from log s",
                "from checkpoint s");
    for (const std::string& where : {std::string("data_dir"), std::string("etcd")}) {
      if (where == "etcd" && c.etcd.empty()) continue;
      const auto [from_log, from_checkpoint] = MeasureRecovery(
          c.recover_objects, where == "data_dir" ? tmpl : "", where == "etcd" ? c.etcd : "");
      std::printf("%10s %14.2f %18.2f\n", where.c_str(), from_log, from_checkpoint);
      json row = {{"recover_objects", c.recover_objects},
                  {"log", where},
                  {"from_log_s", from_log},
                  {"from_checkpoint_s", from_checkpoint}};
      std::printf("%s\n", row.dump().c_str());
      all.push_back(std::move(row));
    }
    std::error_code ec;
    fs::remove_all(tmpl, ec);
    if (!c.json_path.empty()) std::ofstream(c.json_path) << all.dump(2) << "\n";
    return 0;
  }

  std::printf(
      "store_wal_bench: log on %s (%s), %.1f s per row and mode, protocol %s, %d writer(s)\n",
      c.data_dir.c_str(), ferry::bench::FsType(c.data_dir).c_str(), c.seconds, c.protocol.c_str(),
      c.writers);
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
      const Row mem = RunCase(c, size, batch, Mode::kMemory, "");
      const Row wal = RunCase(c, size, batch, Mode::kDataDir, tmpl);
      const Row ha = c.etcd.empty() ? Row{} : RunCase(c, size, batch, Mode::kEtcd, "");
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
      const double ha_ratio = mem.objects_per_s > 0 ? ha.objects_per_s / mem.objects_per_s : 0;
      if (!c.etcd.empty()) {
        const double ha_per_commit =
            ha.commits ? static_cast<double>(ha.records) / static_cast<double>(ha.commits) : 0;
        std::printf("%8s %6s %14s %14.0f %10s %10.3f %7.2f %8s %10.1f %10.3f  (HA: log in etcd)\n",
                    "", "", "etcd", ha.objects_per_s, "", ha.gb_per_s, ha_ratio,
                    targeted ? (ha_ratio >= kTargetRatio ? ">=0.7 ok" : ">=0.7 NO") : "-",
                    ha_per_commit, ha.commit_ms);
      }
      failed |= mem.failures > 0 || wal.failures > 0 || ha.failures > 0;
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
                  {"fs", ferry::bench::FsType(c.data_dir)}};
      if (!c.etcd.empty()) {
        row["etcd_objects_per_s"] = ha.objects_per_s;
        row["etcd_ratio"] = ha_ratio;
        row["etcd_commits"] = ha.commits;
        row["etcd_commit_ms"] = ha.commit_ms;
      }
      std::printf("%s\n", row.dump().c_str());
      all.push_back(std::move(row));
    }
  }
  if (!c.json_path.empty()) std::ofstream(c.json_path) << all.dump(2) << "\n";
  if (failed) std::fprintf(stderr, "some puts failed\n");
  return failed ? 1 : 0;
}
