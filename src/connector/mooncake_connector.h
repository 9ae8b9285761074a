// MooncakeConnector: the Mooncake-style P2P disaggregation connector (protocol.md), one of
// the engine's KV connectors (engine/kv_connector.h), as vLLM's MooncakeConnector.
//
// A producer (prefill) keeps the KV blocks of finished prompts for their transfer_id
// (RequestFinished answers delay_free) and, when a decoder asks over the side channel,
// writes them into the decoder's KV memory with the transfer engine (num_workers sender
// threads), then lets the engine free them (KvTransferDone{kBlocksFreed}). Blocks nobody
// claims are freed after the abort timeout. A consumer (decode) offers the whole prompt
// from the prefill (GetNumNewMatchedTokens), asks the prefill's bootstrap server where its
// worker is, sends it one side-channel request per prompt with its own block addresses,
// and reports the outcome (KvTransferDone{kLoad}).
//
//   MooncakeConnectorOptions opts;  opts.role = "kv_producer";
//   FERRY_ASSIGN_OR_RETURN(auto conn, MooncakeConnector::Create(opts));
//   FERRY_RETURN_IF_ERROR(engine->AttachKvConnector(std::move(conn)));  // Bind starts it
//
// Requests say what they want in kv_transfer_params (connector/kv_transfer_params.h):
// do_remote_decode + transfer_id on the prefill, do_remote_prefill + transfer_id +
// remote_bootstrap_addr (+ remote_engine_id, ferry_proxy_auth) on the decoder.
//
// Layout: Ferry's one-region block-major layout (engine/kv_cache_layout.h): block b of the
// region lives at base + b * block_bytes for every layer at once, so a run of consecutive
// blocks is one transfer request.
//
// Thread safety: all methods are thread-safe. The engine's calls never block; transfers
// and side-channel calls run on the connector's own threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "connector/bootstrap_server.h"
#include "engine/kv_cache_layout.h"
#include "engine/kv_connector.h"
#include "ferry/status.h"

namespace ferry::connector {

struct MooncakeConnectorOptions {
  std::string role = "kv_both";  // kv_producer | kv_consumer | kv_both. Default: kv_both.
  // Sender threads per prefill worker. Default: 10.
  int num_workers = 10;
  // "rdma" (the guide's default: the engine's shm, ucx over the host's RDMA NICs, tcp;
  // shm, tcp with a warning where the build or host has no RDMA), "tcp", "shm", "auto"
  // (shm to same-host peers, tcp otherwise), "ucx" (a UCX build; docs/ucx.md). Default:
  // rdma.
  std::string protocol = "rdma";
  // NICs for the transfer engine (TransferEngineOptions::device_name; ucx: UCX_NET_DEVICES).
  // Default: "" (all).
  std::string device_name;
  // "host:port" of an external bootstrap server; "" runs one in this producer. Default: "".
  std::string bootstrap_server_address;
  // Address peers reach this instance at (transfer engine and side channel).
  // Default: 127.0.0.1.
  std::string host = "127.0.0.1";
  // Address the embedded bootstrap server listens on. Default: all interfaces.
  std::string bootstrap_bind_host = "0.0.0.0";
  uint16_t bootstrap_port = 8998;                   // VLLM_MOONCAKE_BOOTSTRAP_PORT
  std::chrono::milliseconds abort_timeout{480000};  // VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT
  // HTTP timeout of bootstrap calls (VLLM_MOONCAKE_CONNECTOR_TIMEOUT). Default: 5 s, not
  // vLLM's 30 s: the bootstrap server answers in milliseconds, and a paused prefill must be
  // noticed in seconds.
  std::chrono::milliseconds connector_timeout{5000};
  // Deadline of a consumer's KV load, from asking the prefill until its KV is in place
  // (FERRY_KV_LOAD_TIMEOUT). Default: 0, meaning abort_timeout.
  std::chrono::milliseconds kv_load_timeout{0};
  // Deadline of one producer push of a prompt's KV (FERRY_KV_TRANSFER_TIMEOUT).
  // Default: 30 s.
  std::chrono::milliseconds transfer_timeout{30000};
  // How long a decoder's pull for a transfer id this prefill has not been given yet may
  // wait for it (the proxy sends both halves at once, so the pull may come first); once the
  // prefill has the request, the pull waits up to abort_timeout. Default: 30 s.
  std::chrono::milliseconds unknown_transfer_timeout{30000};
  // Decoder pulls a producer keeps waiting at once; beyond, a pull is answered ERROR at
  // once. Default: 4096.
  size_t max_waiting_pulls = 4096;
  engine::KvLoadFailurePolicy failure_policy = engine::KvLoadFailurePolicy::kRecompute;
  // After a consumer's load fails, how long writes of that transfer may still land in its
  // blocks: data a dead prefill's kernel had sent, frames a paused one resumes, slices
  // whose transfer_timeout has not run out. The blocks are held that long
  // (FERRY_KV_LATE_WRITE_GUARD seconds). Default: 60 s.
  std::chrono::milliseconds late_write_guard{60000};
  std::string engine_id;  // Default: "" (a random id)
  // The deployment's shared secret (FERRY_KV_SECRET or kv_connector_extra_config.secret):
  // authenticates the transfer engine's connections, every side-channel message and every
  // bootstrap call. Default: "" (open, with a warning at start).
  std::string secret;
  // Bootstrap servers ("host:port" or "http://host:port") a consumer may pull from
  // (kv_connector_extra_config.allowed_bootstrap_addrs or FERRY_KV_ALLOWED_BOOTSTRAP, comma
  // separated). A request naming another one is refused, unless `ferry proxy` holding the
  // secret signed it. Default: empty: with a secret only proxy-signed addresses are
  // contacted; without one, any (open, with a warning at start).
  std::vector<std::string> allowed_bootstrap_addrs;
  // The shape of the embedded bootstrap server's /query answer; consumers read either.
  // Default: kByDpRank.
  BootstrapQueryFormat bootstrap_query_format = BootstrapQueryFormat::kByDpRank;

  bool is_producer() const { return role == "kv_producer" || role == "kv_both"; }
  bool is_consumer() const { return role == "kv_consumer" || role == "kv_both"; }
};

// Reads VLLM_MOONCAKE_BOOTSTRAP_PORT, VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT,
// VLLM_MOONCAKE_CONNECTOR_TIMEOUT, FERRY_KV_LOAD_FAILURE_POLICY (recompute|fail),
// FERRY_KV_LOAD_TIMEOUT, FERRY_KV_TRANSFER_TIMEOUT, FERRY_KV_LATE_WRITE_GUARD (seconds),
// FERRY_KV_SECRET (unless
// options->secret is set already) and FERRY_KV_ALLOWED_BOOTSTRAP (added to the list) into
// `options`. Errors: InvalidArgument naming the variable and its bad value.
Status ApplyConnectorEnvironment(MooncakeConnectorOptions* options);

// Where a consumer request's KV comes from (its kv_transfer_params).
struct RemoteKvSource {
  std::string transfer_id;
  std::string bootstrap_addr;  // "http://host:port"
  std::string engine_id;
  std::string proxy_auth;  // ferry_proxy_auth: the proxy's tag over the three fields above
};

// Limits on the kv_transfer_params fields a request may carry.
inline constexpr size_t kMaxTransferIdBytes = 256;

// What `ferry proxy` signs in a decode request's kv_transfer_params (ferry_proxy_auth), so
// that a decoder knows the bootstrap address came from a proxy holding the secret.
std::string ProxyAuthMessage(const RemoteKvSource& source);

class MooncakeConnector : public engine::KvConnector {
 public:
  // Checks the options; Bind (from LlmEngine::AttachKvConnector) creates the transfer
  // engine, registers the KV region, and for a producer starts the side channel, the
  // bootstrap server (unless external) and registers with it. Errors: InvalidArgument
  // (role, protocol, timeouts); from Bind also AlreadyExists (bootstrap port taken),
  // Unavailable (external bootstrap server unreachable after 3 tries).
  static Result<std::unique_ptr<MooncakeConnector>> Create(const MooncakeConnectorOptions& options);
  ~MooncakeConnector() override = default;

  virtual const MooncakeConnectorOptions& options() const = 0;
  virtual std::string engine_id() const = 0;
  // "http://host:port" of the bootstrap server this producer registered with (after Bind).
  virtual std::string bootstrap_addr() const = 0;
};

}  // namespace ferry::connector
