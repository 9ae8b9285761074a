// KvConnector: the one interface through which the engine lets KV cache come from and go
// to elsewhere (another instance, a KV pool), shaped like vLLM's KV connector API (v1).
// The engine calls it; connectors (src/connector: MooncakeConnector for P2P transfer,
// MooncakeStoreConnector for the pool, MultiConnector for several in order) implement it.
// The engine knows nothing of transfers, sockets, keys or kv_transfer_params' fields.
//
//   // tools/ builds it (connector/kv_connector_factory.h) and attaches it, before Start:
//   FERRY_ASSIGN_OR_RETURN(auto conn, connector::CreateKvConnector(config, context));
//   FERRY_RETURN_IF_ERROR(engine->AttachKvConnector(std::move(conn)));
//   FERRY_RETURN_IF_ERROR(engine->Start());
//
// Life of a request, and which call the engine makes when (all on the engine thread unless
// said otherwise; none of them may block on the network):
//
//   Submit (caller's thread)  PrepareRequest(id, kv_transfer_params): parse and check the
//                             request's connector parameters; an error refuses the request.
//                             ForgetRequest(id) if Submit then refuses it anyway.
//   scheduler, admission      GetNumNewMatchedTokens(req, num_local): how many tokens after
//                             the num_local found in the local prefix cache this connector
//                             can provide. May answer "pending" (asked again in a later
//                             step; a KvTransferDone of kind kLookup wakes the engine).
//   scheduler, allocated      UpdateStateAfterAlloc(req, blocks, num_local, n): blocks were
//                             allocated for the first num_local + n tokens.
//   worker, before compute    StartLoad(req): load those n tokens into their blocks,
//                             asynchronously; the request waits (computes nothing) until
//                             KvTransferDone{kLoad, status}. OK: the tokens count as
//                             computed (at most prompt - 1: the last is always computed);
//                             error: recomputed locally, or the request fails.
//   worker, after prefill     SaveKv(req, blocks, n): the first n tokens' KV (the whole
//                             prompt) is in `blocks`. The engine holds an extra reference
//                             on the blocks until KvTransferDone{kSave}: they are not
//                             reused or rewritten while the connector reads them.
//   finished                  RequestFinished(req, prompt_blocks, reason): may the blocks
//                             be freed now? delay_free keeps the prompt's blocks until
//                             KvTransferDone{kBlocksFreed}; hold_blocks keeps them out of
//                             circulation for a while (late writes of a failed load); the
//                             answer may carry kv_transfer_params for the response.
//   engine Stop               WaitForLoads / WaitForSaves (bounded), then the connector is
//                             destroyed, before the KV cache it reads and writes.
//
// Completion of anything asynchronous comes back through one call,
// KvTransferSink::OnKvTransferDone, from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/deadline.h"
#include "engine/block_manager.h"
#include "engine/kv_cache.h"
#include "ferry/status.h"

namespace ferry::engine {

// The key under which the server adds the client's X-Request-Id to a request's
// kv_transfer_params, replacing any a client wrote there (a connector may name a transfer
// by it when a proxy sends no transfer id).
inline constexpr char kKvRequestIdKey[] = "ferry_request_id";

// What a connector sees of a request. Valid only during the call.
struct KvRequestView {
  const std::string& request_id;
  std::span<const int32_t> prompt_tokens;
};

// The answer to GetNumNewMatchedTokens.
struct KvMatch {
  // Tokens after the local prefix hits this connector provides (0: none). The engine
  // clamps it to the prompt.
  int32_t num_tokens = 0;
  // Not known yet: ask again in a later step.
  bool pending = false;
  // Not OK: the request is refused (finishes with this error, nothing is loaded).
  Status error;

  static KvMatch Pending() { return {0, true, OkStatus()}; }
};

// The answer to RequestFinished.
struct KvFinished {
  // Keep the prompt's blocks (with their references) until KvTransferDone{kBlocksFreed}
  // for this request.
  bool delay_free = false;
  // After that (or at once), keep the blocks from other content for this long. Default: 0.
  std::chrono::milliseconds hold_blocks{0};
  // kv_transfer_params of the response (a JSON object's text), if any.
  std::optional<std::string> response_params;
};

enum class KvTransferKind {
  kLookup,      // a pending GetNumNewMatchedTokens has its answer now: ask again
  kLoad,        // StartLoad's tokens are in place (OK) or cannot be had (error)
  kSave,        // SaveKv is done with the blocks (its status is informational)
  kBlocksFreed  // the blocks RequestFinished delayed may be freed
};

struct KvTransferDone {
  std::string request_id;
  KvTransferKind kind = KvTransferKind::kLoad;
  Status status;
  // kLoad with an error: finish the request with `status` instead of computing the
  // prompt locally.
  bool fail_request = false;
  // kLoad with an error: writes of the failed load may still land in the request's blocks
  // for this long; they are not given to other content before then.
  std::chrono::milliseconds hold_blocks{0};
};

// What the engine offers its connector: LlmEngine implements it and passes itself to
// KvConnector::Bind (MultiConnector binds each of its parts to a sink of its own, which
// forwards to the engine's). Thread-safe; never blocks. Unknown or stale request ids are
// ignored.
class KvTransferSink {
 public:
  virtual ~KvTransferSink() = default;
  virtual void OnKvTransferDone(KvTransferDone done) = 0;
};

class KvConnector {
 public:
  virtual ~KvConnector() = default;

  // Called once by LlmEngine::AttachKvConnector, before the engine thread starts. `sink`
  // outlives every call the connector makes into it (the engine destroys the connector
  // before itself); `cache` is the engine's KV region (base, size, layout) and lives as
  // long.
  virtual Status Bind(KvTransferSink* sink, const KvCache& cache) = 0;

  // --- Front end (the submitting thread) ---
  // `kv_transfer_params`: the request's JSON object text, "" when it has none. Errors are
  // the client's (InvalidArgument naming the field, PermissionDenied, AlreadyExists,
  // FailedPrecondition): the request is refused.
  virtual Status PrepareRequest(const std::string& request_id,
                                const std::string& kv_transfer_params) = 0;
  // Submit refused a request PrepareRequest accepted: forget it.
  virtual void ForgetRequest(const std::string& request_id) = 0;

  // --- Scheduler side (engine thread, never blocking) ---
  // Asked at a request's first admission until the answer is not pending (and again if
  // the blocks for a positive answer could not be had yet); not after a preemption.
  virtual KvMatch GetNumNewMatchedTokens(const KvRequestView& request,
                                         int32_t num_local_tokens) = 0;
  // `blocks` is the request's block table, covering at least num_local + num_external
  // tokens. Called only when GetNumNewMatchedTokens gave num_external > 0.
  virtual void UpdateStateAfterAlloc(const KvRequestView& request, std::span<const BlockId> blocks,
                                     int32_t num_local_tokens, int32_t num_external_tokens) = 0;
  // The request finished with `reason` ("stop", "length", "abort"). `prompt_blocks` is its
  // block table up to its prompt (ceil(prompt / block_size) blocks in token order; fewer,
  // or none, if it finished before holding them all). `loading`: its StartLoad had not
  // completed.
  virtual KvFinished RequestFinished(const KvRequestView& request,
                                     std::span<const BlockId> prompt_blocks,
                                     const std::string& reason, bool loading) = 0;

  // --- Worker side (engine thread, never blocking) ---
  // Starts loading what UpdateStateAfterAlloc announced. Exactly one KvTransferDone{kLoad}
  // follows.
  virtual void StartLoad(const KvRequestView& request) = 0;
  // The first `num_tokens` tokens' KV is in `blocks` (a prefill just finished). Exactly
  // one KvTransferDone{kSave} follows if this returns true; false: nothing to save.
  virtual bool SaveKv(const KvRequestView& request, std::span<const BlockId> blocks,
                      int32_t num_tokens) = 0;
  // Waits until no started load still writes into the KV cache / no save still reads it,
  // or until `deadline`. Errors: DeadlineExceeded.
  virtual Status WaitForLoads(Deadline deadline) = 0;
  virtual Status WaitForSaves(Deadline deadline) = 0;

  // Prometheus text exposition of the connector's metrics ("" if none). Any thread.
  virtual std::string MetricsText() const = 0;
};

// What a connector does when KV it promised cannot be had.
enum class KvLoadFailurePolicy {
  kRecompute,  // prefill the prompt locally; the client still gets a correct answer
  kFail,       // finish the request with an error
};

}  // namespace ferry::engine
