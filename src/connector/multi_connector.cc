#include "connector/multi_connector.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "common/mutex.h"

namespace ferry::connector {
namespace {

using engine::KvTransferDone;
using engine::KvTransferKind;

class MultiConnectorImpl final : public MultiConnector {
 public:
  explicit MultiConnectorImpl(std::vector<std::unique_ptr<engine::KvConnector>> connectors)
      : connectors_(std::move(connectors)) {
    for (size_t i = 0; i < connectors_.size(); ++i) sinks_.emplace_back(this);
  }
  // The parts stop (and join their threads) before the sinks they call go.
  ~MultiConnectorImpl() override { connectors_.clear(); }

  size_t size() const override { return connectors_.size(); }
  engine::KvConnector& connector(size_t i) override { return *connectors_.at(i); }

  Status Bind(engine::KvTransferSink* sink, const engine::KvCache& cache) override {
    if (sink == nullptr) return InvalidArgumentError("multi connector: no engine to bind to");
    sink_ = sink;
    for (size_t i = 0; i < connectors_.size(); ++i) {
      FERRY_RETURN_IF_ERROR(connectors_[i]->Bind(&sinks_[i], cache));
    }
    return OkStatus();
  }

  Status PrepareRequest(const std::string& request_id,
                        const std::string& kv_transfer_params) override {
    for (size_t i = 0; i < connectors_.size(); ++i) {
      Status st = connectors_[i]->PrepareRequest(request_id, kv_transfer_params);
      if (!st.ok()) {
        for (size_t j = 0; j < i; ++j) connectors_[j]->ForgetRequest(request_id);
        return st;
      }
    }
    return OkStatus();
  }

  void ForgetRequest(const std::string& request_id) override {
    for (auto& c : connectors_) c->ForgetRequest(request_id);
    MutexLock lock(&mu_);
    chosen_.erase(request_id);
  }

  engine::KvMatch GetNumNewMatchedTokens(const engine::KvRequestView& request,
                                         int32_t num_local_tokens) override {
    for (size_t i = 0; i < connectors_.size(); ++i) {
      engine::KvMatch m = connectors_[i]->GetNumNewMatchedTokens(request, num_local_tokens);
      if (m.pending || !m.error.ok()) return m;
      if (m.num_tokens > 0) {
        MutexLock lock(&mu_);
        chosen_[request.request_id] = i;
        return m;
      }
    }
    return {};
  }

  void UpdateStateAfterAlloc(const engine::KvRequestView& request,
                             std::span<const engine::BlockId> blocks, int32_t num_local_tokens,
                             int32_t num_external_tokens) override {
    if (engine::KvConnector* c = Chosen(request.request_id)) {
      c->UpdateStateAfterAlloc(request, blocks, num_local_tokens, num_external_tokens);
    }
  }

  void StartLoad(const engine::KvRequestView& request) override {
    if (engine::KvConnector* c = Chosen(request.request_id)) {
      c->StartLoad(request);
    } else {
      sink_->OnKvTransferDone({request.request_id, KvTransferKind::kLoad,
                               InternalError("no connector planned a load for this request")});
    }
  }

  engine::KvFinished RequestFinished(const engine::KvRequestView& request,
                                     std::span<const engine::BlockId> prompt_blocks,
                                     const std::string& reason, bool loading) override {
    engine::KvConnector* chosen = Chosen(request.request_id);
    engine::KvFinished all;
    {
      MutexLock lock(&mu_);
      chosen_.erase(request.request_id);
      // One share per part and one for this call: a part that delays may report before
      // its RequestFinished has returned here, and must not end the wait early.
      pending_frees_[request.request_id].count = static_cast<int>(connectors_.size()) + 1;
    }
    for (auto& c : connectors_) {
      engine::KvFinished f =
          c->RequestFinished(request, prompt_blocks, reason, loading && c.get() == chosen);
      all.hold_blocks = std::max(all.hold_blocks, f.hold_blocks);
      if (!all.response_params && f.response_params) all.response_params = f.response_params;
      if (f.delay_free) {
        all.delay_free = true;
      } else {
        DropShare(&pending_frees_, request.request_id, KvTransferKind::kBlocksFreed, false);
      }
    }
    DropShare(&pending_frees_, request.request_id, KvTransferKind::kBlocksFreed,
              /*forward=*/all.delay_free);
    return all;
  }

  bool SaveKv(const engine::KvRequestView& request, std::span<const engine::BlockId> blocks,
              int32_t num_tokens) override {
    {
      MutexLock lock(&mu_);
      pending_saves_[request.request_id].count = static_cast<int>(connectors_.size()) + 1;
    }
    bool any = false;
    for (auto& c : connectors_) {
      if (c->SaveKv(request, blocks, num_tokens)) {
        any = true;
      } else {
        DropShare(&pending_saves_, request.request_id, KvTransferKind::kSave, false);
      }
    }
    DropShare(&pending_saves_, request.request_id, KvTransferKind::kSave, /*forward=*/any);
    return any;
  }

  Status WaitForLoads(Deadline deadline) override {
    for (auto& c : connectors_) FERRY_RETURN_IF_ERROR(c->WaitForLoads(deadline));
    return OkStatus();
  }
  Status WaitForSaves(Deadline deadline) override {
    for (auto& c : connectors_) FERRY_RETURN_IF_ERROR(c->WaitForSaves(deadline));
    return OkStatus();
  }

  std::string MetricsText() const override {
    std::string out;
    for (const auto& c : connectors_) out += c->MetricsText();
    return out;
  }

 private:
  struct Pending {
    int count = 0;
  };
  using PendingMap = std::unordered_map<std::string, Pending>;

  // Each part reports through its own sink; completions that several parts share
  // (kSave, kBlocksFreed) reach the engine once, when the last of them is done.
  class PartSink final : public engine::KvTransferSink {
   public:
    explicit PartSink(MultiConnectorImpl* multi) : multi_(multi) {}
    void OnKvTransferDone(KvTransferDone done) override { multi_->FromPart(std::move(done)); }

   private:
    MultiConnectorImpl* multi_;
  };

  void FromPart(KvTransferDone done) {
    if (done.kind == KvTransferKind::kSave) {
      DropShare(&pending_saves_, done.request_id, done.kind, true);
    } else if (done.kind == KvTransferKind::kBlocksFreed) {
      DropShare(&pending_frees_, done.request_id, done.kind, true);
    } else {
      sink_->OnKvTransferDone(std::move(done));
    }
  }

  // Drops one share of `rid` in `map`; the last one tells the engine (if `forward`).
  void DropShare(PendingMap* map, const std::string& rid, KvTransferKind kind, bool forward) {
    {
      MutexLock lock(&mu_);
      auto it = map->find(rid);
      if (it == map->end()) return;
      if (--it->second.count > 0) return;
      map->erase(it);
    }
    if (forward) sink_->OnKvTransferDone({rid, kind, OkStatus()});
  }

  engine::KvConnector* Chosen(const std::string& rid) {
    MutexLock lock(&mu_);
    auto it = chosen_.find(rid);
    return it == chosen_.end() ? nullptr : connectors_[it->second].get();
  }

  std::vector<std::unique_ptr<engine::KvConnector>> connectors_;
  std::vector<PartSink> sinks_;
  engine::KvTransferSink* sink_ = nullptr;
  Mutex mu_;
  std::unordered_map<std::string, size_t> chosen_ FERRY_GUARDED_BY(mu_);
  PendingMap pending_saves_ FERRY_GUARDED_BY(mu_);
  PendingMap pending_frees_ FERRY_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<MultiConnector>> MultiConnector::Create(
    std::vector<std::unique_ptr<engine::KvConnector>> connectors) {
  if (connectors.empty()) return InvalidArgumentError("MultiConnector needs connectors");
  for (const auto& c : connectors) {
    if (c == nullptr) return InvalidArgumentError("MultiConnector: a null connector");
  }
  return std::unique_ptr<MultiConnector>(new MultiConnectorImpl(std::move(connectors)));
}

}  // namespace ferry::connector
