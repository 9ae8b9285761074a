#include "connector/kv_transfer_params.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ferry::connector {
namespace {

using nlohmann::json;

Status FieldError(const char* key, const std::string& what) {
  const std::string field = std::string("kv_transfer_params.") + key;
  return InvalidArgumentError(field + ": " + what).WithField(field);
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

// A request id that names a transfer: bounded, printable, no spaces (it travels in
// side-channel messages and log lines).
Status CheckRequestIdAsTransferId(const std::string& id) {
  bool printable = std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!id.empty() && id.size() <= kMaxRequestIdBytes && printable) return OkStatus();
  return InvalidArgumentError(
             "kv_transfer_params has no transfer_id, so the request id (X-Request-Id) names the KV "
             "transfer, and it must be 1 to " +
             std::to_string(kMaxRequestIdBytes) +
             " printable ASCII characters without spaces; send kv_transfer_params.transfer_id or "
             "another X-Request-Id")
      .WithField("kv_transfer_params.transfer_id");
}

// bootstrap_server_host + bootstrap_server_port (vLLM's first mooncake proxy) as
// "http://host:port"; "" when the host is absent.
Result<std::string> LegacyBootstrapAddr(const json& j) {
  std::string host;
  FERRY_RETURN_IF_ERROR(ReadText(j, "bootstrap_server_host", &host));
  if (host.empty()) return std::string();
  const bool bad_char = std::any_of(host.begin(), host.end(), [](char c) {
    return c <= 0x20 || c >= 0x7f || c == '/' || c == '@' || c == '?' || c == '#';
  });
  if (bad_char || host.size() > 255) {
    return FieldError("bootstrap_server_host", "must be a host name or an IP address");
  }
  auto it = j.find("bootstrap_server_port");
  int64_t port = -1;
  if (it != j.end() && it->is_number_integer()) {
    port = it->is_number_unsigned() && it->get<uint64_t>() > 65535 ? -1 : it->get<int64_t>();
  } else if (it != j.end() && it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    if (!text.empty() && text.size() <= 5 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      port = std::stoll(text);
    }
  }
  if (port < 1 || port > 65535) {
    return FieldError("bootstrap_server_port",
                      "must be a port number from 1 to 65535 (it goes with bootstrap_server_host)");
  }
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

Result<KvTransferParams> KvTransferParams::Parse(std::string_view text) {
  KvTransferParams p;
  if (text.empty() || text == "null") return p;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || (!j.is_object() && !j.is_null())) {
    return InvalidArgumentError("kv_transfer_params: must be an object or null")
        .WithField("kv_transfer_params");
  }
  if (j.is_null()) return p;
  FERRY_RETURN_IF_ERROR(ReadFlag(j, "do_remote_decode", &p.do_remote_decode));
  FERRY_RETURN_IF_ERROR(ReadFlag(j, "do_remote_prefill", &p.do_remote_prefill));
  FERRY_RETURN_IF_ERROR(ReadText(j, "transfer_id", &p.transfer_id));
  FERRY_RETURN_IF_ERROR(ReadText(j, "remote_engine_id", &p.remote_engine_id));
  FERRY_RETURN_IF_ERROR(ReadText(j, "remote_bootstrap_addr", &p.remote_bootstrap_addr));
  FERRY_RETURN_IF_ERROR(ReadText(j, "ferry_proxy_auth", &p.ferry_proxy_auth));
  // Checked only where it names the transfer: an over-long X-Request-Id is no error when
  // transfer_id is given.
  if (auto rid = j.find(kRequestIdKey); rid != j.end() && rid->is_string()) {
    p.request_id = rid->get<std::string>();
  }
  if (p.remote_bootstrap_addr.empty()) {
    FERRY_ASSIGN_OR_RETURN(p.remote_bootstrap_addr, LegacyBootstrapAddr(j));
  }
  if (auto dp = j.find("remote_dp_rank"); dp != j.end() && !dp->is_null()) {
    if (!dp->is_number_integer() || dp->get<int64_t>() != 0) {
      return FieldError("remote_dp_rank",
                        "must be 0: a Ferry prefill instance has one data-parallel rank");
    }
  }
  if (p.transfer_id.empty() && (p.do_remote_decode || p.do_remote_prefill) &&
      !p.request_id.empty()) {
    FERRY_RETURN_IF_ERROR(CheckRequestIdAsTransferId(p.request_id));
    p.transfer_id = p.request_id;
  }
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
