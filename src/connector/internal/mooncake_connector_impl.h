// MooncakeConnectorImpl: the state behind MooncakeConnector, shared by mooncake_connector.cc
// (set-up, the engine's calls, metrics), mooncake_producer.cc (prefill side) and
// mooncake_consumer.cc (decode side).
#pragma once

#include <httplib.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/deadline.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "common/thread_pool.h"
#include "connector/bootstrap_server.h"
#include "connector/internal/connector_metrics.h"
#include "connector/mooncake_connector.h"
#include "connector/side_channel_client.h"
#include "connector/side_channel_server.h"
#include "ferry/transfer_engine.h"
#include "http/http_client_call.h"

namespace ferry::connector {

// The notification a producer sends, after a push's writes, to the decoder's transfer
// engine; `token` is the pull request's ferry_token. A consumer accepts FINISH only once it
// has it, so KV that was never written is never taken as loaded.
std::string KvWrittenNotification(const std::string& token);

// "host:port" of a bootstrap address given as "host:port" or "http://host:port[/]".
// Errors: InvalidArgument.
Result<std::string> NormalizeBootstrapAddr(std::string_view addr);

class MooncakeConnectorImpl final : public MooncakeConnector {
 public:
  explicit MooncakeConnectorImpl(const MooncakeConnectorOptions& options);
  ~MooncakeConnectorImpl() override;

  // The option checks of Create.
  Status Validate();

  // MooncakeConnector
  const MooncakeConnectorOptions& options() const override { return options_; }
  std::string engine_id() const override { return engine_id_; }
  std::string bootstrap_addr() const override { return bootstrap_addr_; }

  // engine::KvConnector
  Status Bind(engine::KvTransferSink* sink, const engine::KvCache& cache) override;
  Status PrepareRequest(const std::string& request_id,
                        const std::string& kv_transfer_params) override;
  void ForgetRequest(const std::string& request_id) override;
  engine::KvMatch GetNumNewMatchedTokens(const engine::KvRequestView& request,
                                         int32_t num_local_tokens) override;
  void UpdateStateAfterAlloc(const engine::KvRequestView& request,
                             std::span<const engine::BlockId> blocks, int32_t num_local_tokens,
                             int32_t num_external_tokens) override;
  engine::KvFinished RequestFinished(const engine::KvRequestView& request,
                                     std::span<const engine::BlockId> prompt_blocks,
                                     const std::string& reason, bool loading) override;
  void StartLoad(const engine::KvRequestView& request) override;
  bool SaveKv(const engine::KvRequestView&, std::span<const engine::BlockId>, int32_t) override {
    return false;  // a producer's KV leaves when a decoder pulls it (RequestFinished)
  }
  Status WaitForLoads(Deadline deadline) override;
  // Pushes read the KV cache until they end; the destructor joins the senders, and the
  // engine destroys the connector before its KV cache. Nothing to wait for here.
  Status WaitForSaves(Deadline) override { return OkStatus(); }
  std::string MetricsText() const override;

 private:
  // One side-channel call; replied once all of its requests are resolved.
  struct CallState {
    explicit CallState(SideChannelServer::Call c, size_t n) : call(std::move(c)), remaining(n) {}
    void Resolve(const std::string& decode_req_id, const Status& status);
    Mutex mu;
    SideChannelServer::Call call FERRY_GUARDED_BY(mu);
    size_t remaining FERRY_GUARDED_BY(mu);
    KvPullReply reply FERRY_GUARDED_BY(mu);
  };
  // Prefill blocks kept for a transfer_id.
  struct Ready {
    std::string request_id;
    std::vector<int32_t> blocks;
    SteadyClock::time_point expires;
  };
  // A decoder's request that arrived before the prefill finished.
  struct Parked {
    std::shared_ptr<CallState> call;
    std::string decode_req_id;
    RequestBlocks blocks;
    SteadyClock::time_point arrived;
  };

  // Set-up (mooncake_connector.cc).
  Status Start();
  Status StartProducer();
  // Producer / consumer bookkeeping behind PrepareRequest and ForgetRequest.
  Status ExpectProducerRequest(const std::string& request_id, const std::string& transfer_id);
  Status ExpectConsumerRequest(const std::string& request_id, const RemoteKvSource& source);
  // The engine's answers go through here (kLoad also ends a load in flight).
  void Report(engine::KvTransferDone done);
  void ReleaseKept(const std::string& request_id) {
    Report({request_id, engine::KvTransferKind::kBlocksFreed, OkStatus()});
  }
  Status RegisterWithBootstrap();
  // One bootstrap call: signed and its reply checked when there is a secret, the reply
  // read within 1 MiB (mooncake_connector.cc). Errors: Unavailable (unreachable, reply too
  // large), PermissionDenied (reply not authenticated).
  Result<http::CallReply> AuthenticatedCall(httplib::Client& client, const std::string& method,
                                            const std::string& target, const std::string& body);

  // Producer (mooncake_producer.cc).
  // A do_remote_decode request finished: `blocks` (its prompt's) are kept for its
  // transfer_id, or empty when nothing is kept (any finish but "length").
  void OnKeptBlocks(const std::string& request_id, const std::string& finish_reason,
                    const std::vector<int32_t>& blocks);
  void HandleCall(SideChannelServer::Call call);
  // Claims `ready` and pushes its blocks on a sender thread.
  void DispatchLocked(std::shared_ptr<CallState> call, std::string decode_req_id,
                      RequestBlocks blocks, Ready ready) FERRY_REQUIRES(mu_);
  Status PushBlocks(const KvPullRequest& request, const RequestBlocks& want,
                    const std::vector<int32_t>& have);
  // TransferSync that gives up when the connector stops (the batch is then left to the
  // transfer engine's destruction).
  Status TransferUnlessStopping(const std::vector<TransferRequest>& reqs,
                                const std::string& notify);
  void SweepLoop();
  bool Stopping() const;

  // Consumer (mooncake_consumer.cc).
  // Pulls the prompt KV into `blocks`; the first num_cached_tokens are local already.
  void OnRemoteKvNeeded(const std::string& request_id, const std::vector<int32_t>& blocks,
                        int32_t num_cached_tokens);
  Status CheckBootstrapAllowed(const RemoteKvSource& source);
  void Pull(const std::string& request_id, const RemoteKvSource& source,
            std::vector<int32_t> blocks, int32_t num_cached_tokens);
  void OnPullReply(const std::string& request_id, const RemoteKvSource& source,
                   const std::string& token, size_t blocks, SteadyClock::time_point start,
                   Result<KvPullReply> reply);
  // True once the producer's KvWrittenNotification(token) has arrived.
  bool TakeWrittenNotification(const std::string& token);
  void FinishPull(const std::string& request_id, const RemoteKvSource& source, const Status& s);
  Result<std::string> ResolveWorker(const RemoteKvSource& source);

  const MooncakeConnectorOptions options_;
  // The engine's KV region, set by Bind before any other engine call.
  engine::KvCacheLayout layout_;
  char* kv_base_ = nullptr;
  size_t kv_bytes_ = 0;
  std::string engine_id_;
  std::string bootstrap_addr_;
  engine::KvTransferSink* sink_ = nullptr;
  MessageAuth bootstrap_auth_;               // bootstrap calls (client side)
  MessageAuth proxy_auth_;                   // ferry_proxy_auth tags (consumer side)
  std::set<std::string> allowed_bootstrap_;  // normalized "host:port"

  std::unique_ptr<TransferEngine> transfer_;
  std::unique_ptr<BootstrapServer> bootstrap_;
  std::unique_ptr<SideChannelServer> side_channel_;
  std::unique_ptr<SideChannelClient> side_client_;  // consumer
  std::unique_ptr<ThreadPool> senders_;             // producer: num_workers threads
  std::unique_ptr<ThreadPool> pullers_;             // consumer: bootstrap queries

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  // request -> transfer
  std::unordered_map<std::string, std::string> producer_tags_ FERRY_GUARDED_BY(mu_);
  // values of producer_tags_
  std::unordered_set<std::string> pending_transfers_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, Ready> ready_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::pair<std::string, SteadyClock::time_point>> failed_
      FERRY_GUARDED_BY(mu_);
  std::unordered_multimap<std::string, Parked> parked_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, RemoteKvSource> consumer_sources_ FERRY_GUARDED_BY(mu_);
  // Consumer: blocks allocated for a request (UpdateStateAfterAlloc) until StartLoad.
  struct PendingLoad {
    std::vector<int32_t> blocks;
    int32_t num_local_tokens = 0;
  };
  std::unordered_map<std::string, PendingLoad> pending_loads_ FERRY_GUARDED_BY(mu_);
  int64_t loads_in_flight_ FERRY_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> worker_cache_ FERRY_GUARDED_BY(mu_);
  // in flight, stopped at shutdown
  std::set<httplib::Client*> bootstrap_calls_ FERRY_GUARDED_BY(mu_);
  // Consumer: KvWrittenNotification tokens received and not yet matched, with arrival time.
  std::unordered_map<std::string, SteadyClock::time_point> written_ FERRY_GUARDED_BY(mu_);
  std::thread sweeper_;

  ConnectorMetrics metrics_;
};

}  // namespace ferry::connector
