// Wiring of the disaggregation connector into `ferry serve`: the connector options from
// --kv-transfer-config and the environment, the engine hooks, and the server hooks that
// turn a request's kv_transfer_params into engine flags.
//
//   ServeConnector sc;
//   sc.InstallEngineHooks(&engine_options);          // before LlmEngine::Create
//   FERRY_RETURN_IF_ERROR(sc.Start(config, host, engine.get()));  // before Start()
//   sc.InstallServerHooks(&server_options);
//
// The ServeConnector must outlive the engine's thread (stop the engine first).
#pragma once

#include <memory>
#include <string>

#include "connector/kv_connector.h"
#include "engine/llm_engine.h"
#include "server/kv_transfer_config.h"
#include "server/openai_server.h"

namespace ferry::cli {

class ServeConnector {
 public:
  ServeConnector();
  ~ServeConnector();

  // Routes the engine's connector callbacks here (no-ops until Start succeeds).
  void InstallEngineHooks(engine::EngineOptions* options);
  // Creates the connector over the engine's KV region. `serve_host` is --host.
  // Errors: as KvConnector::Create and ApplyConnectorEnvironment.
  Status Start(const server::KvTransferConfig& config, const std::string& serve_host,
               engine::LlmEngine* engine);
  // Lets requests with kv_transfer_params use the connector (or be refused clearly when
  // there is none).
  void InstallServerHooks(server::OpenAiServerOptions* options);

  // Stops the connector (its senders read the engine's KV memory): after the engine's
  // thread stopped and before the engine is destroyed.
  void Stop();

  connector::KvConnector* connector() const { return connector_.get(); }

 private:
  class EngineControl;
  std::unique_ptr<EngineControl> control_;
  std::unique_ptr<connector::KvConnector> connector_;
};

// The address peers reach this instance at: VLLM_HOST_IP, else `serve_host` unless it is
// a wildcard, else the first non-loopback IPv4 address, else 127.0.0.1.
std::string AdvertisedHostIp(const std::string& serve_host);

}  // namespace ferry::cli
