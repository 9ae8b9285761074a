// MultiConnector: several KV connectors (engine/kv_connector.h) as one, in order, as vLLM's
// MultiConnector: e.g. the P2P MooncakeConnector and the pool's MooncakeStoreConnector, so
// that a disaggregated deployment also reuses prefixes from the pool.
//
//   std::vector<std::unique_ptr<engine::KvConnector>> parts;
//   parts.push_back(std::move(p2p));  parts.push_back(std::move(store));
//   FERRY_ASSIGN_OR_RETURN(auto multi, MultiConnector::Create(std::move(parts)));
//   FERRY_RETURN_IF_ERROR(engine->AttachKvConnector(std::move(multi)));
//
// - PrepareRequest: every connector must accept the request (one refusal refuses it).
// - GetNumNewMatchedTokens: asked in order; the first one that offers tokens (or is still
//   pending) answers, and only it is told about the allocation and loads.
// - SaveKv: offered to every connector; done when all that took it are done.
// - RequestFinished: asked of every connector; the blocks are freed when none delays it
//   any more, held for the longest hold asked, and the first response parameters win.
//
// Thread safety: as its connectors (all methods thread-safe).
#pragma once

#include <memory>
#include <vector>

#include "engine/kv_connector.h"
#include "ferry/status.h"

namespace ferry::connector {

class MultiConnector : public engine::KvConnector {
 public:
  // Errors: InvalidArgument (no connectors, or a null one).
  static Result<std::unique_ptr<MultiConnector>> Create(
      std::vector<std::unique_ptr<engine::KvConnector>> connectors);
  ~MultiConnector() override = default;

  virtual size_t size() const = 0;
  virtual engine::KvConnector& connector(size_t i) = 0;
};

}  // namespace ferry::connector
