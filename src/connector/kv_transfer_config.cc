#include "connector/kv_transfer_config.h"

#include <sys/stat.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/byte_size.h"
#include "connector/bootstrap_server.h"

namespace ferry::connector {
namespace {

using nlohmann::json;

Status ReadString(const json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return OkStatus();
  if (!it->is_string()) {
    return InvalidArgumentError(std::string("kv-transfer-config: ") + key + " must be a string");
  }
  *out = it->get<std::string>();
  return OkStatus();
}

constexpr size_t kMaxChildConnectors = 4;

Result<KvTransferConfig> ParseConfigObject(const json& j, const std::string& parent_role,
                                           int depth);

Status ReadStoreExtra(const json& extra, KvTransferConfig* c) {
  for (const auto& [key, value] : extra.items()) {
    if (key == "mooncake_config_path") {
      if (!value.is_string()) {
        return InvalidArgumentError("kv-transfer-config: mooncake_config_path must be a string");
      }
      c->mooncake_config_path = value.get<std::string>();
    } else if (key == "load_failure_policy") {
      if (!value.is_string() || (value != "recompute" && value != "fail")) {
        return InvalidArgumentError(
            "kv-transfer-config: load_failure_policy must be \"recompute\" or \"fail\"");
      }
      c->fail_on_load_error = value == "fail";
    } else if (key == "rpc_timeout" || key == "transfer_timeout") {
      if (!value.is_number() || !(value.get<double>() > 0) || value.get<double>() > 3600) {
        return InvalidArgumentError("kv-transfer-config: " + key +
                                    " must be a number of seconds in (0, 3600]");
      }
      (key == "rpc_timeout" ? c->store_rpc_timeout_s : c->store_transfer_timeout_s) =
          value.get<double>();
    } else {
      return InvalidArgumentError(
          "kv-transfer-config: unknown MooncakeStoreConnector kv_connector_extra_config key '" +
          key +
          "' (expected mooncake_config_path, load_failure_policy, rpc_timeout, "
          "transfer_timeout)");
    }
  }
  return OkStatus();
}

Status ReadMultiExtra(const json& extra, int depth, KvTransferConfig* c) {
  for (const auto& [key, value] : extra.items()) {
    if (key != "connectors") {
      return InvalidArgumentError(
          "kv-transfer-config: unknown MultiConnector kv_connector_extra_config key '" + key +
          "' (expected connectors)");
    }
  }
  auto list = extra.find("connectors");
  if (list == extra.end() || !list->is_array() || list->empty() ||
      list->size() > kMaxChildConnectors) {
    return InvalidArgumentError(
        "kv-transfer-config: MultiConnector needs kv_connector_extra_config.connectors, a list "
        "of 1 to " +
        std::to_string(kMaxChildConnectors) + " connector configs");
  }
  for (const json& child : *list) {
    auto parsed = ParseConfigObject(child, c->kv_role, depth + 1);
    if (!parsed.ok()) return parsed.status();
    c->connectors.push_back(std::move(parsed).value());
  }
  return OkStatus();
}

Result<KvTransferConfig> ParseConfigObject(const json& j, const std::string& parent_role,
                                           int depth) {
  if (!j.is_object()) return InvalidArgumentError("kv-transfer-config: a config must be an object");
  KvTransferConfig c;
  for (const auto& [key, value] : j.items()) {
    if (key != "kv_connector" && key != "kv_role" && key != "kv_connector_extra_config") {
      return InvalidArgumentError("kv-transfer-config: unknown key '" + key +
                                  "' (expected kv_connector, kv_role, "
                                  "kv_connector_extra_config)");
    }
  }
  FERRY_RETURN_IF_ERROR(ReadString(j, "kv_connector", &c.kv_connector));
  FERRY_RETURN_IF_ERROR(ReadString(j, "kv_role", &c.kv_role));
  if (c.kv_role.empty()) c.kv_role = parent_role;
  const bool p2p = c.kv_connector == "MooncakeConnector";
  const bool store = c.kv_connector == "MooncakeStoreConnector";
  const bool multi = c.kv_connector == "MultiConnector";
  if (!p2p && !store && !multi) {
    return InvalidArgumentError(
        "kv-transfer-config: kv_connector must be \"MooncakeConnector\", "
        "\"MooncakeStoreConnector\" or \"MultiConnector\", got \"" +
        c.kv_connector + "\"");
  }
  if (multi && depth > 0) {
    return InvalidArgumentError("kv-transfer-config: a MultiConnector cannot hold another");
  }
  if (c.kv_role != "kv_producer" && c.kv_role != "kv_consumer" && c.kv_role != "kv_both") {
    return InvalidArgumentError(
        "kv-transfer-config: kv_role must be one of kv_producer, kv_consumer, kv_both; got \"" +
        c.kv_role + "\"");
  }
  auto extra = j.find("kv_connector_extra_config");
  if (extra == j.end() || extra->is_null()) {
    if (multi) return InvalidArgumentError("kv-transfer-config: MultiConnector needs connectors");
    return c;
  }
  if (!extra->is_object()) {
    return InvalidArgumentError("kv-transfer-config: kv_connector_extra_config must be an object");
  }
  if (store) {
    FERRY_RETURN_IF_ERROR(ReadStoreExtra(*extra, &c));
    return c;
  }
  if (multi) {
    FERRY_RETURN_IF_ERROR(ReadMultiExtra(*extra, depth, &c));
    return c;
  }
  for (const auto& [key, value] : extra->items()) {
    if (key == "num_workers") {
      if (!value.is_number_integer() || value.get<int64_t>() <= 0 || value.get<int64_t>() > 1024) {
        return InvalidArgumentError(
            "kv-transfer-config: num_workers must be an integer in [1, 1024]");
      }
      c.num_workers = static_cast<int32_t>(value.get<int64_t>());
    } else if (key == "kv_load_timeout") {
      if (!value.is_number() || !(value.get<double>() > 0) || value.get<double>() > 1e7) {
        return InvalidArgumentError(
            "kv-transfer-config: kv_load_timeout must be a positive number of seconds");
      }
      c.kv_load_timeout_s = value.get<double>();
    } else if (key == "allowed_bootstrap_addrs") {
      auto bad = InvalidArgumentError(
          "kv-transfer-config: allowed_bootstrap_addrs must be a list of \"host:port\" strings "
          "or one comma-separated string");
      if (value.is_string()) {
        std::string list = value.get<std::string>();
        size_t pos = 0;
        while (pos <= list.size()) {
          size_t comma = list.find(',', pos);
          if (comma == std::string::npos) comma = list.size();
          if (comma > pos) c.allowed_bootstrap_addrs.push_back(list.substr(pos, comma - pos));
          pos = comma + 1;
        }
      } else if (value.is_array()) {
        for (const auto& item : value) {
          if (!item.is_string()) return bad;
          c.allowed_bootstrap_addrs.push_back(item.get<std::string>());
        }
      } else {
        return bad;
      }
    } else if (key == "bootstrap_query_format") {
      if (!value.is_string() || !ParseBootstrapQueryFormat(value.get<std::string>()).ok()) {
        return InvalidArgumentError(
            "kv-transfer-config: bootstrap_query_format must be \"by_dp_rank\" (the default) or "
            "\"by_engine_id\" (for vLLM's mooncake proxy at f1b4b28; docs/connector.md)");
      }
      c.bootstrap_query_format = value.get<std::string>();
    } else if (key != "mooncake_protocol" && key != "device_name" &&
               key != "bootstrap_server_address" && key != "secret") {
      return InvalidArgumentError("kv-transfer-config: unknown kv_connector_extra_config key '" +
                                  key +
                                  "' (expected num_workers, mooncake_protocol, device_name, "
                                  "bootstrap_server_address, secret, allowed_bootstrap_addrs, "
                                  "kv_load_timeout, bootstrap_query_format)");
    }
  }
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "secret", &c.secret));
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "mooncake_protocol", &c.mooncake_protocol));
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "device_name", &c.device_name));
  FERRY_RETURN_IF_ERROR(
      ReadString(*extra, "bootstrap_server_address", &c.bootstrap_server_address));
  return c;
}

Status ReadSize(const json& obj, const char* key, const std::string& source, uint64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return OkStatus();
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0)) {
    *out = it->get<uint64_t>();
    return OkStatus();
  }
  if (it->is_string()) {
    auto n = ParseByteSize(it->get<std::string>());
    if (n.ok()) {
      *out = *n;
      return OkStatus();
    }
  }
  return InvalidArgumentError(source + ": " + key +
                              " must be a byte count or a size such as \"4GB\"");
}

}  // namespace

Result<KvTransferConfig> ParseKvTransferConfig(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError("kv-transfer-config is not a JSON object: " +
                                std::string(json_text.substr(0, 200)));
  }
  return ParseConfigObject(j, "", 0);
}

Result<StoreConfig> ParseStoreConfig(std::string_view json_text, const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError(source + " is not a JSON object");
  }
  StoreConfig c;
  for (const auto& [key, value] : j.items()) {
    if (key == "global_segment_size" || key == "local_buffer_size") continue;
    std::string* field = key == "local_hostname"          ? &c.local_hostname
                         : key == "metadata_server"       ? &c.metadata_server
                         : key == "master_server_address" ? &c.master_server_address
                         : key == "protocol"              ? &c.protocol
                         : key == "device_name"           ? &c.device_name
                                                          : nullptr;
    if (field == nullptr) {
      return InvalidArgumentError(source + ": unknown key '" + key +
                                  "' (expected local_hostname, metadata_server, "
                                  "master_server_address, protocol, device_name, "
                                  "global_segment_size, local_buffer_size)");
    }
    if (!value.is_string()) return InvalidArgumentError(source + ": " + key + " must be a string");
    *field = value.get<std::string>();
  }
  FERRY_RETURN_IF_ERROR(ReadSize(j, "global_segment_size", source, &c.global_segment_size));
  FERRY_RETURN_IF_ERROR(ReadSize(j, "local_buffer_size", source, &c.local_buffer_size));
  if (c.master_server_address.empty()) {
    return InvalidArgumentError(source + ": master_server_address is required");
  }
  return c;
}

Result<StoreConfig> LoadStoreConfig(const std::string& path) {
  struct stat st {};
  if (path.empty()) {
    return InvalidArgumentError(
        "MooncakeStoreConnector needs the pool's settings: set MOONCAKE_CONFIG_PATH (or "
        "kv_connector_extra_config.mooncake_config_path) to a JSON file");
  }
  if (stat(path.c_str(), &st) != 0) return NotFoundError("store config " + path + " not found");
  if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
    return InvalidArgumentError("store config " + path + " must be a file of at most 1 MiB");
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseStoreConfig(text.str(), "store config " + path);
}

}  // namespace ferry::connector
