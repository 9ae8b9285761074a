#include "connector/kv_transfer_params.h"

#include <nlohmann/json.hpp>

namespace ferry::connector {
namespace {

using nlohmann::json;

Status FieldError(const char* key, const std::string& what) {
  return InvalidArgumentError(std::string("kv_transfer_params.") + key + ": " + what);
}

Status ReadFlag(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_boolean()) return FieldError(key, "must be a boolean");
  *out = it->get<bool>();
  return OkStatus();
}

Status ReadText(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_string()) return FieldError(key, "must be a string");
  if (it->get_ref<const std::string&>().size() > kMaxTransferParamBytes) {
    return FieldError(key, "is longer than " + std::to_string(kMaxTransferParamBytes) + " bytes");
  }
  *out = it->get<std::string>();
  return OkStatus();
}

}  // namespace

Result<KvTransferParams> KvTransferParams::Parse(std::string_view text) {
  KvTransferParams p;
  if (text.empty() || text == "null") return p;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || (!j.is_object() && !j.is_null())) {
    return InvalidArgumentError("kv_transfer_params: must be an object or null");
  }
  if (j.is_null()) return p;
  FERRY_RETURN_IF_ERROR(ReadFlag(j, "do_remote_decode", &p.do_remote_decode));
  FERRY_RETURN_IF_ERROR(ReadFlag(j, "do_remote_prefill", &p.do_remote_prefill));
  FERRY_RETURN_IF_ERROR(ReadText(j, "transfer_id", &p.transfer_id));
  FERRY_RETURN_IF_ERROR(ReadText(j, "remote_engine_id", &p.remote_engine_id));
  FERRY_RETURN_IF_ERROR(ReadText(j, "remote_bootstrap_addr", &p.remote_bootstrap_addr));
  FERRY_RETURN_IF_ERROR(ReadText(j, "ferry_proxy_auth", &p.ferry_proxy_auth));
  return p;
}

std::string KvTransferParams::ToJson() const {
  json j = {{"do_remote_decode", do_remote_decode}, {"do_remote_prefill", do_remote_prefill}};
  if (!transfer_id.empty()) j["transfer_id"] = transfer_id;
  if (!remote_engine_id.empty()) j["remote_engine_id"] = remote_engine_id;
  if (!remote_bootstrap_addr.empty()) j["remote_bootstrap_addr"] = remote_bootstrap_addr;
  if (!ferry_proxy_auth.empty()) j["ferry_proxy_auth"] = ferry_proxy_auth;
  return j.dump();
}

}  // namespace ferry::connector
