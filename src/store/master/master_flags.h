// MasterFlags: `ferry master`'s flags as typed (Mooncake's mooncake_master names), and
// their checked conversion to MasterServer::Options.
//
// Durations are text: a bare number is in the flag's own unit (milliseconds for the
// *_ttl flags, seconds for client_ttl and the put_start timeouts, as in Mooncake), or a
// number with a unit: "500ms", "10s", "5m", "1h".
//
//   ferry::store::MasterFlags f;
//   f.default_kv_lease_ttl = "5s";
//   auto options = ferry::store::ToMasterOptions(f);  // lease ttl 5000 ms
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"
#include "store/ha_cluster.h"
#include "store/master/master_server.h"

namespace ferry::store {

struct MasterFlags {
  std::string rpc_address = "0.0.0.0";
  int64_t rpc_port = 50051;
  int64_t metrics_port = 9003;
  std::string default_kv_lease_ttl = "10000";       // ms
  std::string default_kv_soft_pin_ttl = "1800000";  // ms (30 min)
  bool allow_evict_soft_pinned_objects = true;
  double eviction_high_watermark_ratio = 0.90;
  double eviction_ratio = 0.05;
  std::string client_ttl = "10";                      // s
  std::string put_start_discard_timeout_sec = "30";   // s
  std::string put_start_release_timeout_sec = "600";  // s
  bool enable_http_metadata_server = false;
  int64_t http_metadata_server_port = 8080;
  std::string secret;    // "" = FERRY_KV_SECRET, else open
  std::string data_dir;  // "" = metadata in memory only
  int64_t snapshot_every_records = 100000;
  // HA: several masters, one leader elected through etcd. --etcd_endpoints h1:2379,h2:2379,
  // or Mooncake's --enable_ha --ha_backend_connstring etcd://h1:2379;h2:2379.
  std::string etcd_endpoints;
  std::string cluster_id = std::string(kDefaultClusterId);
  bool enable_ha = false;
  std::string ha_backend_connstring;
  std::string ha_lease_ttl = "2";  // s, whole seconds (etcd's leases are)
  // The SSD tier (MasterServiceOptions).
  bool enable_offload = false;
  bool offload_on_evict = true;
  bool eager_offload = false;
  bool promotion_on_hit = false;
  int64_t promotion_admission_threshold = 2;
  std::string offload_timeout = "30";  // s
};

// `text` as a duration; a bare number is in `unit`. InvalidArgument naming `flag` for
// anything else (negative, empty, unknown unit, overflow).
Result<std::chrono::milliseconds> ParseFlagDuration(std::string_view flag, std::string_view text,
                                                    std::chrono::milliseconds unit);

// Checked options: ports in 0..65535, ratios in (0, 1], put_start_release >= discard, etcd
// endpoints well formed, one of --data_dir and HA.
Result<MasterServer::Options> ToMasterOptions(const MasterFlags& flags);

}  // namespace ferry::store
