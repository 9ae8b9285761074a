// KvConnector: the Mooncake-style disaggregation connector (protocol.md).
//
// A producer (prefill) keeps the KV blocks of finished prompts for their transfer_id and,
// when a decoder asks over the side channel, writes them into the decoder's KV memory with
// the transfer engine (num_workers sender threads), then frees them. Blocks nobody claims
// are freed after the abort timeout. A consumer (decode) asks the prefill's bootstrap
// server where its worker is, sends it one side-channel request per prompt with its own
// block addresses, and hands the result back to the engine.
//
//   KvConnectorOptions opts;  opts.role = "kv_producer";
//   FERRY_ASSIGN_OR_RETURN(auto conn, KvConnector::Create(opts, layout, kv_base, kv_bytes));
//   conn->AttachEngine(&engine_control);   // before the engine runs
//   engine_options.connector_hooks = conn.get();
//
// Layout: Ferry's one-region block-major layout (engine/kv_cache_layout.h): block b of the
// region lives at base + b * block_bytes for every layer at once, so a run of consecutive
// blocks is one transfer request.
//
// Thread safety: all methods are thread-safe. The hooks run on the engine thread and never
// block; transfers and side-channel calls run on the connector's own threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/kv_cache_layout.h"
#include "engine/kv_connector_hooks.h"
#include "ferry/status.h"

namespace ferry::connector {

struct KvConnectorOptions {
  std::string role = "kv_both";  // kv_producer | kv_consumer | kv_both
  // Sender threads per prefill worker. Default: 10.
  int num_workers = 10;
  // "rdma" (the guide's default; no RDMA transport here: falls back to "auto" with a
  // warning), "tcp", "shm", "auto" (shm to same-host peers, tcp otherwise).
  std::string protocol = "rdma";
  std::string device_name;  // accepted for compatibility; NICs are not selectable
  // "host:port" of an external bootstrap server; "" runs one in this producer.
  std::string bootstrap_server_address;
  // Address peers reach this instance at (transfer engine and side channel).
  std::string host = "127.0.0.1";
  // Address the embedded bootstrap server listens on. Default: all interfaces.
  std::string bootstrap_bind_host = "0.0.0.0";
  uint16_t bootstrap_port = 8998;                      // VLLM_MOONCAKE_BOOTSTRAP_PORT
  std::chrono::milliseconds abort_timeout{480000};     // VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT
  std::chrono::milliseconds connector_timeout{30000};  // VLLM_MOONCAKE_CONNECTOR_TIMEOUT
  engine::KvLoadFailurePolicy failure_policy = engine::KvLoadFailurePolicy::kRecompute;
  std::string engine_id;  // Default: "" (a random id)

  bool is_producer() const { return role == "kv_producer" || role == "kv_both"; }
  bool is_consumer() const { return role == "kv_consumer" || role == "kv_both"; }
};

// Reads VLLM_MOONCAKE_BOOTSTRAP_PORT, VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT,
// VLLM_MOONCAKE_CONNECTOR_TIMEOUT and FERRY_KV_LOAD_FAILURE_POLICY (recompute|fail) into
// `options`. Errors: InvalidArgument naming the variable and its bad value.
Status ApplyConnectorEnvironment(KvConnectorOptions* options);

// What the connector asks of the engine (LlmEngine implements it).
class KvEngineControl {
 public:
  virtual ~KvEngineControl() = default;
  virtual void ReleaseKeptBlocks(const std::string& request_id) = 0;
  // OK: the remote KV is in place. Error: apply `policy`.
  virtual void FinishRemoteKv(const std::string& request_id, const Status& status,
                              engine::KvLoadFailurePolicy policy) = 0;
};

// Where a consumer request's KV comes from (its kv_transfer_params).
struct RemoteKvSource {
  std::string transfer_id;
  std::string bootstrap_addr;  // "http://host:port"
  std::string engine_id;
};

class KvConnector : public engine::KvConnectorHooks {
 public:
  // Creates the transfer engine, registers the KV region, and for a producer starts the
  // side channel, the bootstrap server (unless external) and registers with it.
  // Errors: InvalidArgument (role, protocol), AlreadyExists (bootstrap port taken),
  // Unavailable (external bootstrap server unreachable after 3 tries).
  static Result<std::unique_ptr<KvConnector>> Create(const KvConnectorOptions& options,
                                                     const engine::KvCacheLayout& layout,
                                                     void* kv_base, size_t kv_bytes);
  ~KvConnector() override = default;

  // Must be called once before the engine starts; `control` must outlive the connector's
  // use (the engine stops before the connector is destroyed).
  virtual void AttachEngine(KvEngineControl* control) = 0;

  // Producer: the next OnKeptBlocks for request_id belongs to transfer_id.
  virtual Status ExpectProducerRequest(const std::string& request_id,
                                       const std::string& transfer_id) = 0;
  // Consumer: the next OnRemoteKvNeeded for request_id pulls from `source`.
  virtual Status ExpectConsumerRequest(const std::string& request_id,
                                       const RemoteKvSource& source) = 0;

  virtual const KvConnectorOptions& options() const = 0;
  virtual std::string engine_id() const = 0;
  // "http://host:port" of the bootstrap server this producer registered with.
  virtual std::string bootstrap_addr() const = 0;
  // Prometheus text exposition of the connector's metrics.
  virtual std::string MetricsText() const = 0;
};

}  // namespace ferry::connector
