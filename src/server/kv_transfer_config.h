// KvTransferConfig: the --kv-transfer-config JSON of `ferry serve` (vLLM's flag), parsed
// and validated.
//
//   FERRY_ASSIGN_OR_RETURN(KvTransferConfig c, ParseKvTransferConfig(
//       R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer"})"));
//
// Accepted: {"kv_connector": "MooncakeConnector",
//            "kv_role": "kv_producer" | "kv_consumer" | "kv_both",
//            "kv_connector_extra_config": {"num_workers": int > 0,
//                                          "mooncake_protocol": string,
//                                          "device_name": string,
//                                          "bootstrap_server_address": string,
//                                          "secret": string,
//                                          "allowed_bootstrap_addrs": [string] | "a,b",
//                                          "kv_load_timeout": seconds > 0}}
// kv_connector and kv_role are required; every extra key is optional; unknown keys in the
// extra config are rejected so that typos do not pass silently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::server {

struct KvTransferConfig {
  std::string kv_connector;                          // "MooncakeConnector"
  std::string kv_role;                               // "kv_producer" | "kv_consumer" | "kv_both"
  int32_t num_workers = 10;                          // prefill sender pool. Default: 10.
  std::string mooncake_protocol = "rdma";            // Default: "rdma" (as in the Mooncake guide).
  std::string device_name;                           // Default: "" (any).
  std::string bootstrap_server_address;              // Default: "" (this host).
  std::string secret;                                // Default: "" (FERRY_KV_SECRET, else none).
  std::vector<std::string> allowed_bootstrap_addrs;  // Default: none.
  double kv_load_timeout_s = 0;  // Default: 0 (FERRY_KV_LOAD_TIMEOUT, else the abort timeout).

  bool is_producer() const { return kv_role == "kv_producer" || kv_role == "kv_both"; }
  bool is_consumer() const { return kv_role == "kv_consumer" || kv_role == "kv_both"; }
};

// Errors: InvalidArgument naming the offending key and what is allowed.
Result<KvTransferConfig> ParseKvTransferConfig(std::string_view json_text);

}  // namespace ferry::server
