#include "serve_connector.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstdlib>

#include "common/log.h"

namespace ferry::cli {

class ServeConnector::EngineControl : public connector::KvEngineControl {
 public:
  explicit EngineControl(engine::LlmEngine* engine) : engine_(engine) {}
  void ReleaseKeptBlocks(const std::string& request_id) override {
    engine_->ReleaseKeptBlocks(request_id);
  }
  void FinishRemoteKv(const std::string& request_id, const Status& status,
                      engine::KvLoadFailurePolicy policy,
                      std::chrono::milliseconds hold_blocks) override {
    if (status.ok()) {
      engine_->NotifyRemoteKvLoaded(request_id, true);
    } else if (policy == engine::KvLoadFailurePolicy::kRecompute) {
      engine_->NotifyRemoteKvLoaded(request_id, false, hold_blocks);  // prefill it here
    } else {
      engine_->FailRemoteKv(request_id, status.WithContext("remote KV load failed"), hold_blocks);
    }
  }

 private:
  engine::LlmEngine* engine_;
};

namespace {

// Field readers that never throw: a missing, null or mistyped field reads as false / "".
bool Flag(const nlohmann::json& params, const char* key) {
  auto it = params.find(key);
  return it != params.end() && it->is_boolean() && it->get<bool>();
}
std::string Str(const nlohmann::json& params, const char* key) {
  auto it = params.find(key);
  return it != params.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

ServeConnector::ServeConnector() = default;
ServeConnector::~ServeConnector() = default;

std::string AdvertisedHostIp(const std::string& serve_host) {
  if (const char* ip = std::getenv("VLLM_HOST_IP"); ip != nullptr && *ip) return ip;
  if (!serve_host.empty() && serve_host != "0.0.0.0" && serve_host != "::" &&
      serve_host != "localhost") {
    return serve_host;
  }
  std::string found = "127.0.0.1";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
      found = buf;
      break;
    }
    freeifaddrs(list);
  }
  return found;
}

void ServeConnector::InstallEngineHooks(engine::EngineOptions* options) {
  // The hooks run on the engine thread, which starts after Start() set connector_.
  options->on_blocks_kept = [this](const std::string& rid, const std::string& reason,
                                   std::span<const engine::BlockId> blocks) {
    if (connector_) connector_->OnKeptBlocks(rid, reason, {blocks.begin(), blocks.end()});
  };
  options->on_waiting_for_remote_kv = [this](const std::string& rid,
                                             std::span<const engine::BlockId> blocks,
                                             int32_t num_cached_tokens) {
    if (connector_) {
      connector_->OnRemoteKvNeeded(rid, {blocks.begin(), blocks.end()}, num_cached_tokens);
    }
  };
  options->remote_kv_abort_hold = [this] {
    return connector_ ? connector_->options().late_write_guard : std::chrono::milliseconds(0);
  };
}

void ServeConnector::Stop() { connector_.reset(); }

Status ServeConnector::Start(const server::KvTransferConfig& config, const std::string& serve_host,
                             engine::LlmEngine* engine) {
  connector::KvConnectorOptions o;
  o.role = config.kv_role;
  o.num_workers = config.num_workers;
  o.protocol = config.mooncake_protocol;
  o.device_name = config.device_name;
  o.bootstrap_server_address = config.bootstrap_server_address;
  o.secret = config.secret;
  o.allowed_bootstrap_addrs = config.allowed_bootstrap_addrs;
  o.kv_load_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.kv_load_timeout_s * 1000));
  o.host = AdvertisedHostIp(serve_host);
  // The bootstrap server listens where the HTTP server does (all interfaces by default, as
  // vLLM), unless peers are told another address (VLLM_HOST_IP): then everywhere.
  o.bootstrap_bind_host = serve_host == o.host ? serve_host : "0.0.0.0";
  FERRY_RETURN_IF_ERROR(connector::ApplyConnectorEnvironment(&o));
  const engine::KvCache& kv = engine->kv_cache();
  FERRY_ASSIGN_OR_RETURN(
      auto conn, connector::KvConnector::Create(o, kv.layout(), kv.data(), kv.size_bytes()));
  control_ = std::make_unique<EngineControl>(engine);
  conn->AttachEngine(control_.get());
  connector_ = std::move(conn);
  return OkStatus();
}

void ServeConnector::InstallServerHooks(server::OpenAiServerOptions* options) {
  options->prepare_kv_transfer = [this](const nlohmann::json& params, const std::string& rid,
                                        engine::GenerateRequest* request) -> Status {
    if (!params.is_object()) return InvalidArgumentError("must be an object");
    const bool remote_decode = Flag(params, "do_remote_decode");
    const bool remote_prefill = Flag(params, "do_remote_prefill");
    if (!remote_decode && !remote_prefill) return OkStatus();
    if (!connector_) {
      return FailedPreconditionError(
          "this instance was started without --kv-transfer-config; it cannot take part in "
          "disaggregated serving");
    }
    auto str = [&](const char* key) { return Str(params, key); };
    if (remote_decode) {
      FERRY_RETURN_IF_ERROR(connector_->ExpectProducerRequest(rid, str("transfer_id")));
      request->keep_blocks_on_finish = true;
      return OkStatus();
    }
    connector::RemoteKvSource source{str("transfer_id"), str("remote_bootstrap_addr"),
                                     str("remote_engine_id"), str("ferry_proxy_auth")};
    FERRY_RETURN_IF_ERROR(connector_->ExpectConsumerRequest(rid, source));
    request->wait_for_remote_kv = true;
    return OkStatus();
  };
  options->abandon_kv_transfer = [this](const std::string& rid) {
    if (connector_) connector_->ForgetRequest(rid);
  };
  options->kv_transfer_params = [this](const nlohmann::json& params,
                                       const std::string&) -> nlohmann::json {
    if (!connector_ || !params.is_object() || !Flag(params, "do_remote_decode")) {
      return nullptr;
    }
    // What a decoder needs to pull this prompt's KV (vLLM's producer answer).
    return {{"do_remote_prefill", true},
            {"do_remote_decode", false},
            {"remote_engine_id", connector_->engine_id()},
            {"remote_bootstrap_addr", connector_->bootstrap_addr()},
            {"transfer_id", Str(params, "transfer_id")}};
  };
}

}  // namespace ferry::cli
