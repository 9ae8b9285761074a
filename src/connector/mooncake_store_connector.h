// MooncakeStoreConnector: the engine's KV connector (engine/kv_connector.h) over the KV
// cache pool (src/store), as vLLM's Mooncake store connector: a prefix one instance
// prefilled is loaded, not recomputed, by any instance of the same model.
//
//   MooncakeStoreConnectorOptions o;
//   o.model = "Qwen2-0.5B";
//   FERRY_ASSIGN_OR_RETURN(o.store, LoadStoreConfig("/etc/ferry/mooncake.json"));
//   FERRY_ASSIGN_OR_RETURN(auto conn, MooncakeStoreConnector::Create(o));
//   FERRY_RETURN_IF_ERROR(engine->AttachKvConnector(std::move(conn)));
//
// Objects: one per full KV block, all layers (block_bytes contiguous bytes of the
// block-major KV cache), named by KvBlockKeys (model, layout, 128-bit chained token hash).
// - Lookup: one BatchExist per request over the full blocks of all but its last prompt
//   token, on a connector thread (GetNumNewMatchedTokens answers pending meanwhile); the
//   hit is the longest prefix of existing blocks beyond the local prefix-cache hits.
// - Load: one BatchGetInto straight into the request's paged KV blocks (the KV cache is
//   registered with the store client), on a connector thread while the engine computes
//   other requests. Any failure (a member gone, an evicted block, the master down) is
//   reported as a failed load: the engine computes those tokens itself.
// - Save: after a prefill, the prompt's full blocks the pool lacks (BatchExist, then
//   BatchPutFrom from the KV cache, first writer wins), off the engine thread; the
//   response does not wait for it. A full pool (NO_AVAILABLE_HANDLE) pauses saving for
//   save_pause; serving goes on.
// - The pool may be down when the instance starts: the connector serves without it and
//   tries to join every reconnect_interval.
// kv_role: kv_producer only saves, kv_consumer only loads, kv_both does both.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "connector/kv_transfer_config.h"
#include "engine/kv_connector.h"
#include "ferry/status.h"

namespace ferry::connector {

struct MooncakeStoreConnectorOptions {
  std::string role = "kv_both";  // kv_producer (save) | kv_consumer (load) | kv_both
  std::string model;             // the served model's name (part of every key)
  StoreConfig store;             // the pool (MOONCAKE_CONFIG_PATH)
  // local_hostname when the store config has none. Default: 127.0.0.1.
  std::string host = "127.0.0.1";
  std::string secret;               // the deployment's secret. Default: FERRY_KV_SECRET at Create.
  bool fail_on_load_error = false;  // finish the request instead of recomputing
  // Connector threads for lookups and loads / for saves. Defaults: 2 / 1.
  int io_threads = 2;
  int save_threads = 1;
  // Saving pauses this long after the pool said it is full. Default: 5 s.
  std::chrono::milliseconds save_pause{5000};
  // How often to try to join the pool while it cannot be reached. Default: 2 s.
  std::chrono::milliseconds reconnect_interval{2000};
  // Master RPC and transfer deadlines of the store client. Defaults: 2 s, 10 s.
  std::chrono::milliseconds rpc_timeout{2000};
  std::chrono::milliseconds transfer_timeout{10000};
};

class MooncakeStoreConnector : public engine::KvConnector {
 public:
  // Checks the options; Bind joins the pool (or starts trying to). Errors: InvalidArgument.
  static Result<std::unique_ptr<MooncakeStoreConnector>> Create(
      const MooncakeStoreConnectorOptions& options);
  ~MooncakeStoreConnector() override = default;

  // True once the store client is up (the pool was reached).
  virtual bool connected() const = 0;
};

}  // namespace ferry::connector
