// Builds the KV connector that a --kv-transfer-config describes (connector/
// kv_transfer_config.h): a MooncakeConnector, a MooncakeStoreConnector or a MultiConnector
// of them, with the settings the environment adds (VLLM_MOONCAKE_*, FERRY_KV_*,
// MOONCAKE_CONFIG_PATH, VLLM_HOST_IP). The caller attaches it to the engine:
//
//   FERRY_ASSIGN_OR_RETURN(KvTransferConfig config, ParseKvTransferConfig(flag));
//   FERRY_ASSIGN_OR_RETURN(auto conn, CreateKvConnector(config, {"0.0.0.0", "my-model"}));
//   FERRY_RETURN_IF_ERROR(engine->AttachKvConnector(std::move(conn)));
#pragma once

#include <memory>
#include <string>

#include "connector/kv_transfer_config.h"
#include "engine/kv_connector.h"
#include "ferry/status.h"

namespace ferry::connector {

struct ConnectorContext {
  std::string serve_host;  // `ferry serve --host`
  std::string model;       // the served model's name (names the pool's objects)
};

// Errors: InvalidArgument (bad settings or environment), NotFound (the store config file).
Result<std::unique_ptr<engine::KvConnector>> CreateKvConnector(const KvTransferConfig& config,
                                                               const ConnectorContext& context);

// The address peers reach this instance at: VLLM_HOST_IP, else `serve_host` unless it is
// a wildcard, else the first non-loopback IPv4 address, else 127.0.0.1.
std::string AdvertisedHostIp(const std::string& serve_host);

}  // namespace ferry::connector
