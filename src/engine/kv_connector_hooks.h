// The engine's side of the disaggregation connector: the narrow interface through which a
// connector (src/connector) learns about KV blocks and hands remote KV back. The engine
// knows nothing of transfers, sockets or the protocol.
//
// Producer (prefill): a request submitted with keep_blocks_on_finish keeps its blocks when
// it finishes; the engine calls OnKeptBlocks, and the connector later calls
// LlmEngine::ReleaseKeptBlocks.
// Consumer (decode): a request submitted with remote_prefill gets its blocks allocated
// (prefix-cache hits included), then waits; the engine calls OnRemoteKvNeeded and the
// connector later calls LlmEngine::NotifyRemoteKvLoaded (or FailRemoteKv).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::engine {

class KvConnectorHooks {
 public:
  virtual ~KvConnectorHooks() = default;

  // A keep_blocks_on_finish request finished. `blocks` cover exactly its prompt tokens
  // (ceil(prompt_len / block_size) ids, in token order) and stay allocated until
  // ReleaseKeptBlocks(request_id); empty if nothing was kept (any finish but "length").
  // Called on the engine thread: must not block.
  virtual void OnKeptBlocks(const std::string& request_id, const std::string& finish_reason,
                            const std::vector<int32_t>& blocks) = 0;

  // A remote_prefill request has its blocks: `blocks` cover the whole prompt; the first
  // `num_cached_tokens` tokens (whole blocks) are already in this engine's KV cache, the
  // rest must be written by the remote side. Answer with LlmEngine::NotifyRemoteKvLoaded (or
  // FailRemoteKv). Called on the engine thread: must not block.
  virtual void OnRemoteKvNeeded(const std::string& request_id, const std::vector<int32_t>& blocks,
                                int32_t num_cached_tokens) = 0;
};

// What a consumer does when remote KV cannot be had.
enum class KvLoadFailurePolicy {
  kRecompute,  // prefill the prompt locally; the client still gets a correct answer
  kFail,       // finish the request with an error
};

}  // namespace ferry::engine
