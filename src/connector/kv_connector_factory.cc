#include "connector/kv_connector_factory.h"

#include <cstdlib>
#include <vector>

#include "common/host_port.h"
#include "connector/mooncake_connector.h"
#include "connector/mooncake_store_connector.h"
#include "connector/multi_connector.h"

namespace ferry::connector {
namespace {

Result<std::unique_ptr<engine::KvConnector>> CreateP2p(const KvTransferConfig& config,
                                                       const ConnectorContext& context) {
  MooncakeConnectorOptions o;
  o.role = config.kv_role;
  o.num_workers = config.num_workers;
  o.protocol = config.mooncake_protocol;
  o.device_name = config.device_name;
  o.bootstrap_server_address = config.bootstrap_server_address;
  o.secret = config.secret;
  o.allowed_bootstrap_addrs = config.allowed_bootstrap_addrs;
  FERRY_ASSIGN_OR_RETURN(o.bootstrap_query_format,
                         ParseBootstrapQueryFormat(config.bootstrap_query_format));
  o.kv_load_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.kv_load_timeout_s * 1000));
  o.host = AdvertisedHostIp(context.serve_host);
  // The bootstrap server listens where the HTTP server does (all interfaces by default, as
  // vLLM), unless peers are told another address (VLLM_HOST_IP): then everywhere.
  o.bootstrap_bind_host = context.serve_host == o.host ? context.serve_host : "0.0.0.0";
  FERRY_RETURN_IF_ERROR(ApplyConnectorEnvironment(&o));
  FERRY_ASSIGN_OR_RETURN(auto conn, MooncakeConnector::Create(o));
  return std::unique_ptr<engine::KvConnector>(std::move(conn));
}

Result<std::unique_ptr<engine::KvConnector>> CreateStore(const KvTransferConfig& config,
                                                         const ConnectorContext& context) {
  std::string path = config.mooncake_config_path;
  if (path.empty()) {
    if (const char* env = std::getenv("MOONCAKE_CONFIG_PATH"); env != nullptr) path = env;
  }
  MooncakeStoreConnectorOptions o;
  o.role = config.kv_role;
  o.model = context.model;
  FERRY_ASSIGN_OR_RETURN(o.store, LoadStoreConfig(path));
  o.host = AdvertisedHostIp(context.serve_host);
  o.secret = config.secret;
  o.fail_on_load_error = config.fail_on_load_error;
  o.rpc_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.store_rpc_timeout_s * 1000));
  o.transfer_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.store_transfer_timeout_s * 1000));
  FERRY_ASSIGN_OR_RETURN(auto conn, MooncakeStoreConnector::Create(o));
  return std::unique_ptr<engine::KvConnector>(std::move(conn));
}

}  // namespace

Result<std::unique_ptr<engine::KvConnector>> CreateKvConnector(const KvTransferConfig& config,
                                                               const ConnectorContext& context) {
  if (config.kv_connector == "MooncakeConnector") return CreateP2p(config, context);
  if (config.kv_connector == "MooncakeStoreConnector") return CreateStore(config, context);
  if (config.kv_connector != "MultiConnector") {
    return InvalidArgumentError("unknown kv_connector '" + config.kv_connector + "'");
  }
  std::vector<std::unique_ptr<engine::KvConnector>> parts;
  for (const KvTransferConfig& child : config.connectors) {
    if (child.kv_connector == "MultiConnector") {
      return InvalidArgumentError("a MultiConnector cannot hold another");
    }
    FERRY_ASSIGN_OR_RETURN(auto part, CreateKvConnector(child, context));
    parts.push_back(std::move(part));
  }
  FERRY_ASSIGN_OR_RETURN(auto multi, MultiConnector::Create(std::move(parts)));
  return std::unique_ptr<engine::KvConnector>(std::move(multi));
}

std::string AdvertisedHostIp(const std::string& serve_host) {
  if (const char* ip = std::getenv("VLLM_HOST_IP"); ip != nullptr && *ip) return ip;
  if (!serve_host.empty() && serve_host != "0.0.0.0" && serve_host != "::" &&
      serve_host != "localhost") {
    return serve_host;
  }
  return LocalIpv4Address();
}

}  // namespace ferry::connector
