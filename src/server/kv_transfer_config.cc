#include "server/kv_transfer_config.h"

#include <nlohmann/json.hpp>

namespace ferry::server {
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

}  // namespace

Result<KvTransferConfig> ParseKvTransferConfig(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError("kv-transfer-config is not a JSON object: " +
                                std::string(json_text));
  }
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
  if (c.kv_connector != "MooncakeConnector") {
    return InvalidArgumentError(
        "kv-transfer-config: kv_connector must be \"MooncakeConnector\", got \"" + c.kv_connector +
        "\"");
  }
  if (c.kv_role != "kv_producer" && c.kv_role != "kv_consumer" && c.kv_role != "kv_both") {
    return InvalidArgumentError(
        "kv-transfer-config: kv_role must be one of kv_producer, kv_consumer, kv_both; got \"" +
        c.kv_role + "\"");
  }
  auto extra = j.find("kv_connector_extra_config");
  if (extra == j.end() || extra->is_null()) return c;
  if (!extra->is_object()) {
    return InvalidArgumentError("kv-transfer-config: kv_connector_extra_config must be an object");
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
    } else if (key != "mooncake_protocol" && key != "device_name" &&
               key != "bootstrap_server_address" && key != "secret") {
      return InvalidArgumentError("kv-transfer-config: unknown kv_connector_extra_config key '" +
                                  key +
                                  "' (expected num_workers, mooncake_protocol, device_name, "
                                  "bootstrap_server_address, secret, allowed_bootstrap_addrs, "
                                  "kv_load_timeout)");
    }
  }
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "secret", &c.secret));
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "mooncake_protocol", &c.mooncake_protocol));
  FERRY_RETURN_IF_ERROR(ReadString(*extra, "device_name", &c.device_name));
  FERRY_RETURN_IF_ERROR(
      ReadString(*extra, "bootstrap_server_address", &c.bootstrap_server_address));
  return c;
}

}  // namespace ferry::server
