// KvTransferConfig: the --kv-transfer-config JSON of `ferry serve` (vLLM's flag), parsed
// and validated; and the pool settings of MOONCAKE_CONFIG_PATH.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(KvTransferConfig c, ParseKvTransferConfig(
//       R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer"})"));
//
// Accepted:
//   {"kv_connector": "MooncakeConnector",      (P2P: prefill pushes KV to decode)
//    "kv_role": "kv_producer" | "kv_consumer" | "kv_both",
//    "kv_connector_extra_config": {"num_workers": int > 0,
//                                  "mooncake_protocol": string,
//                                  "device_name": string,
//                                  "bootstrap_server_address": string,
//                                  "secret": string,
//                                  "allowed_bootstrap_addrs": [string] | "a,b",
//                                  "kv_load_timeout": seconds > 0,
//                                  "bootstrap_query_format": "by_dp_rank" | "by_engine_id"}}
//   {"kv_connector": "MooncakeStoreConnector", (the KV pool; settings in the file named by
//    "kv_role": ...,                           MOONCAKE_CONFIG_PATH, see StoreConfig)
//    "kv_connector_extra_config": {"mooncake_config_path": string,   (wins over the env)
//                                  "load_failure_policy": "recompute" | "fail",
//                                  "rpc_timeout": seconds > 0,         (default 2)
//                                  "transfer_timeout": seconds > 0}}   (default 10)
//   {"kv_connector": "MultiConnector", "kv_role": ...,
//    "kv_connector_extra_config": {"connectors": [config, ...]}}   (1 to 4 configs, none of
//                                  them a MultiConnector; a child without kv_role takes the
//                                  parent's)
// kv_connector and kv_role are required; every extra key is optional; unknown keys are
// rejected so that typos do not pass silently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::connector {

struct KvTransferConfig {
  // "MooncakeConnector" | "MooncakeStoreConnector" | "MultiConnector"
  std::string kv_connector;
  std::string kv_role;  // "kv_producer" | "kv_consumer" | "kv_both"

  // MooncakeConnector.
  int32_t num_workers = 10;                          // prefill sender pool. Default: 10.
  std::string mooncake_protocol = "rdma";            // Default: "rdma" (as in the Mooncake guide).
  std::string device_name;                           // Default: "" (any).
  std::string bootstrap_server_address;              // Default: "" (this host).
  std::string secret;                                // Default: "" (FERRY_KV_SECRET, else none).
  std::vector<std::string> allowed_bootstrap_addrs;  // Default: none.
  double kv_load_timeout_s = 0;  // Default: 0 (FERRY_KV_LOAD_TIMEOUT, else the abort timeout).
  // The shape of the embedded bootstrap server's /query answer (BootstrapQueryFormat):
  // "by_dp_rank" (vLLM today) or "by_engine_id" (vLLM's proxy at f1b4b28). Default: by_dp_rank.
  std::string bootstrap_query_format = "by_dp_rank";

  // MooncakeStoreConnector.
  std::string mooncake_config_path;      // Default: "" (MOONCAKE_CONFIG_PATH).
  bool fail_on_load_error = false;       // load_failure_policy "fail". Default: recompute.
  double store_rpc_timeout_s = 2;        // each master RPC. Default: 2 s.
  double store_transfer_timeout_s = 10;  // each load or save of a request. Default: 10 s.

  // MultiConnector: its connectors, in order.
  std::vector<KvTransferConfig> connectors;

  bool is_producer() const { return kv_role == "kv_producer" || kv_role == "kv_both"; }
  bool is_consumer() const { return kv_role == "kv_consumer" || kv_role == "kv_both"; }
};

// Errors: InvalidArgument naming the offending key and what is allowed.
Result<KvTransferConfig> ParseKvTransferConfig(std::string_view json_text);

// The KV pool a MooncakeStoreConnector joins: the JSON file vLLM's Mooncake store
// integration reads from MOONCAKE_CONFIG_PATH.
//   {"local_hostname": "10.0.0.1",             (default: VLLM_HOST_IP or the serve host)
//    "metadata_server": "P2PHANDSHAKE" | "http://..." | "etcd://...",  (default P2PHANDSHAKE)
//    "master_server_address": "host:port",     (required)
//    "protocol": "tcp" | "rdma" | ...,          (default "tcp")
//    "device_name": "",
//    "global_segment_size": bytes or "4GB",     (DRAM this instance lends; default 3.125 GiB)
//    "local_buffer_size": bytes or "1GB"}       (default 1 GiB; accepted, allocates nothing)
struct StoreConfig {
  std::string local_hostname;
  std::string metadata_server = "P2PHANDSHAKE";
  std::string master_server_address;
  std::string protocol = "tcp";
  std::string device_name;
  uint64_t global_segment_size = 3355443200;  // 3.125 GiB, as vLLM's default
  uint64_t local_buffer_size = 1073741824;    // 1 GiB
};

// Errors: InvalidArgument naming the file and the key.
Result<StoreConfig> ParseStoreConfig(std::string_view json_text, const std::string& source);
// Reads `path` (a regular file of at most 1 MiB). Errors: NotFound, InvalidArgument.
Result<StoreConfig> LoadStoreConfig(const std::string& path);

}  // namespace ferry::connector
