// `ferry master`: the store master (src/store/master, docs/store.md), with Mooncake's
// mooncake_master flag names and defaults. Both --flag=value and --flag value work.
//
//   ferry master --rpc_port 50051 --metrics_port 9003 --default_kv_lease_ttl=5s
//
// Prints one line with the RPC address and the metrics port, then serves until SIGINT or
// SIGTERM. Exit code 0 after a signal, 1 when a flag is bad or a port cannot be bound.
#include <fmt/core.h>

#include <cstdio>
#include <memory>

#include "command.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "stop_signals.h"
#include "store/master/master_flags.h"
#include "store/master/master_server.h"

namespace {

int RunMaster(const ferry::store::MasterFlags& flags) {
  ferry::InitLoggingFromEnv();
  ferry::store::MasterFlags f = flags;
  if (f.secret.empty()) f.secret = ferry::SecretFromEnvironment();
  auto options = ferry::store::ToMasterOptions(f);
  if (!options.ok()) {
    fmt::print(stderr, "ferry master: {}\n", options.status().message());
    return 1;
  }
  const sigset_t signals = ferry::cli::BlockStopSignals();
  auto server = ferry::store::MasterServer::Start(*options);
  if (!server.ok()) {
    fmt::print(stderr, "ferry master: {}\n", server.status().ToString());
    return 1;
  }
  fmt::print("ferry master listening on {} (metrics port {}", (*server)->rpc_address(),
             (*server)->metrics_port());
  if ((*server)->http_metadata_server_port() != 0) {
    fmt::print(", metadata http://{}:{}/metadata", options->metrics_address,
               (*server)->http_metadata_server_port());
  }
  fmt::print(")\n");
  std::fflush(stdout);
  const int sig = ferry::cli::WaitForStopSignal(signals);
  if ((*server)->leading()) {
    FERRY_LOG_INFO("master: signal {}, stopping ({} keys)", sig, (*server)->service().stats().keys);
  } else {
    FERRY_LOG_INFO("master: signal {}, stopping (standby)", sig);
  }
  (*server)->Stop();
  return 0;
}

}  // namespace

FERRY_REGISTER_COMMAND(
    master, "master",
    "Runs the store master: metadata and allocation for the KV cache pool (docs/store.md)",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto f = std::make_shared<ferry::store::MasterFlags>();
      cmd.add_option("--rpc_port,--port", f->rpc_port, "gRPC port")->capture_default_str();
      cmd.add_option("--rpc_address", f->rpc_address, "Address to listen on")
          ->capture_default_str();
      cmd.add_option("--metrics_port", f->metrics_port, "HTTP port: /metrics, /health, ...")
          ->capture_default_str();
      cmd.add_option("--default_kv_lease_ttl", f->default_kv_lease_ttl,
                     "Read lease (ms, or 500ms/10s/5m)")
          ->capture_default_str();
      cmd.add_option("--default_kv_soft_pin_ttl", f->default_kv_soft_pin_ttl,
                     "Soft pin TTL (ms, or with a unit)")
          ->capture_default_str();
      cmd.add_option("--allow_evict_soft_pinned_objects", f->allow_evict_soft_pinned_objects,
                     "Soft-pinned objects may be evicted (after unpinned ones)")
          ->capture_default_str()
          ->expected(0, 1)
          ->default_str("true");
      cmd.add_option("--eviction_high_watermark_ratio", f->eviction_high_watermark_ratio,
                     "Evict when this share of capacity is allocated")
          ->capture_default_str();
      cmd.add_option("--eviction_ratio", f->eviction_ratio, "Share of objects evicted at once")
          ->capture_default_str();
      cmd.add_option("--client_ttl", f->client_ttl, "Drop a client silent this long (s)")
          ->capture_default_str();
      cmd.add_option("--put_start_discard_timeout_sec", f->put_start_discard_timeout_sec,
                     "An unfinished put may be replaced after this (s)")
          ->capture_default_str();
      cmd.add_option("--put_start_release_timeout_sec", f->put_start_release_timeout_sec,
                     "An unfinished put's space is released after this (s)")
          ->capture_default_str();
      cmd.add_option("--enable_http_metadata_server", f->enable_http_metadata_server,
                     "Also serve the transfer engine's HTTP metadata")
          ->capture_default_str()
          ->expected(0, 1)
          ->default_str("true");
      cmd.add_option("--http_metadata_server_port", f->http_metadata_server_port,
                     "Port of the HTTP metadata server")
          ->capture_default_str();
      cmd.add_option("--secret", f->secret,
                     "Deployment secret (default: FERRY_KV_SECRET; none: open)");
      cmd.add_option("--data_dir", f->data_dir,
                     "Keep the metadata (segments, committed objects) in a write-ahead log and "
                     "snapshots in this directory, and recover from it at start");
      cmd.add_option("--snapshot_every_records", f->snapshot_every_records,
                     "Write a snapshot and start a new log after this many log records")
          ->capture_default_str();
      auto bool_flag = [&cmd](const char* name, bool& v, const char* what) {
        cmd.add_option(name, v, what)->capture_default_str()->expected(0, 1)->default_str("true");
      };
      bool_flag("--enable_offload", f->enable_offload,
                "The SSD tier: members started with --enable_ssd_offload lend their disk");
      bool_flag("--offload_on_evict", f->offload_on_evict,
                "SSD tier: an evicted object goes to its member's disk instead of away");
      bool_flag("--eager_offload", f->eager_offload,
                "SSD tier: every object is written to disk right after its put");
      bool_flag("--promotion_on_hit", f->promotion_on_hit,
                "SSD tier: a disk-only object read often enough is copied back to memory");
      cmd.add_option("--promotion_admission_threshold", f->promotion_admission_threshold,
                     "SSD tier: reads of a disk-only object before its promotion")
          ->capture_default_str();
      cmd.add_option("--offload_timeout", f->offload_timeout,
                     "SSD tier: an offload or promotion not reported by then is abandoned (s)")
          ->capture_default_str();
      cmd.add_option("--etcd_endpoints", f->etcd_endpoints,
                     "HA: etcd endpoints host:port[,host:port]; masters with the same "
                     "--cluster_id elect one leader and keep the log in etcd");
      cmd.add_option("--cluster_id", f->cluster_id, "HA: the cluster's name in etcd")
          ->capture_default_str();
      cmd.add_option("--enable_ha", f->enable_ha,
                     "HA, Mooncake's spelling (with --ha_backend_connstring)")
          ->capture_default_str()
          ->expected(0, 1)
          ->default_str("true");
      cmd.add_option("--ha_backend_connstring", f->ha_backend_connstring,
                     "HA: etcd://host:port[;host:port]");
      cmd.add_option("--ha_lease_ttl", f->ha_lease_ttl,
                     "HA: the leader's etcd lease (s); failover takes about this long")
          ->capture_default_str();
      return [f] { return RunMaster(*f); };
    });
