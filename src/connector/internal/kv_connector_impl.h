// KvConnectorImpl: the state behind KvConnector, shared by kv_connector.cc (set-up,
// metrics), kv_producer.cc (prefill side) and kv_consumer.cc (decode side).
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/deadline.h"
#include "common/message_auth.h"
#include "common/thread_pool.h"
#include "connector/bootstrap_server.h"
#include "connector/internal/connector_metrics.h"
#include "connector/kv_connector.h"
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

class KvConnectorImpl final : public KvConnector {
 public:
  KvConnectorImpl(const KvConnectorOptions& options, const engine::KvCacheLayout& layout,
                  void* kv_base, size_t kv_bytes);
  ~KvConnectorImpl() override;

  Status Init();

  // KvConnector
  void AttachEngine(KvEngineControl* control) override { control_ = control; }
  Status ExpectProducerRequest(const std::string& request_id,
                               const std::string& transfer_id) override;
  Status ExpectConsumerRequest(const std::string& request_id,
                               const RemoteKvSource& source) override;
  void ForgetRequest(const std::string& request_id) override;
  const KvConnectorOptions& options() const override { return options_; }
  std::string engine_id() const override { return engine_id_; }
  std::string bootstrap_addr() const override { return bootstrap_addr_; }
  std::string MetricsText() const override;

  // engine::KvConnectorHooks
  void OnKeptBlocks(const std::string& request_id, const std::string& finish_reason,
                    const std::vector<int32_t>& blocks) override;
  void OnRemoteKvNeeded(const std::string& request_id, const std::vector<int32_t>& blocks,
                        int32_t num_cached_tokens) override;

 private:
  // One side-channel call; replied once all of its requests are resolved.
  struct CallState {
    explicit CallState(SideChannelServer::Call c, size_t n) : call(std::move(c)), remaining(n) {}
    void Resolve(const std::string& decode_req_id, const Status& status);
    std::mutex mu;
    SideChannelServer::Call call;  // GUARDED_BY(mu)
    size_t remaining;              // GUARDED_BY(mu)
    KvPullReply reply;             // GUARDED_BY(mu)
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

  // Set-up (kv_connector.cc).
  Status StartProducer();
  Status RegisterWithBootstrap();
  // One bootstrap call: signed and its reply checked when there is a secret, the reply
  // read within 1 MiB (kv_connector.cc). Errors: Unavailable (unreachable, reply too
  // large), PermissionDenied (reply not authenticated).
  Result<http::CallReply> AuthenticatedCall(httplib::Client& client, const std::string& method,
                                            const std::string& target, const std::string& body);

  // Producer (kv_producer.cc).
  void HandleCall(SideChannelServer::Call call);
  // Claims `ready` and pushes its blocks on a sender thread.
  void DispatchLocked(std::shared_ptr<CallState> call, std::string decode_req_id,
                      RequestBlocks blocks, Ready ready);  // REQUIRES(mu_)
  Status PushBlocks(const KvPullRequest& request, const RequestBlocks& want,
                    const std::vector<int32_t>& have);
  // TransferSync that gives up when the connector stops (the batch is then left to the
  // transfer engine's destruction).
  Status TransferUnlessStopping(const std::vector<TransferRequest>& reqs,
                                const std::string& notify);
  void SweepLoop();
  bool Stopping() const;

  // Consumer (kv_consumer.cc).
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

  const KvConnectorOptions options_;
  const engine::KvCacheLayout layout_;
  char* const kv_base_;
  const size_t kv_bytes_;
  std::string engine_id_;
  std::string bootstrap_addr_;
  KvEngineControl* control_ = nullptr;
  MessageAuth bootstrap_auth_;               // bootstrap calls (client side)
  MessageAuth proxy_auth_;                   // ferry_proxy_auth tags (consumer side)
  std::set<std::string> allowed_bootstrap_;  // normalized "host:port"

  std::unique_ptr<TransferEngine> transfer_;
  std::unique_ptr<BootstrapServer> bootstrap_;
  std::unique_ptr<SideChannelServer> side_channel_;
  std::unique_ptr<SideChannelClient> side_client_;  // consumer
  std::unique_ptr<ThreadPool> senders_;             // producer: num_workers threads
  std::unique_ptr<ThreadPool> pullers_;             // consumer: bootstrap queries

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::string>
      producer_tags_;                                  // request -> transfer. GUARDED_BY(mu_)
  std::unordered_set<std::string> pending_transfers_;  // values of producer_tags_. GUARDED_BY(mu_)
  std::unordered_map<std::string, Ready> ready_;       // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::pair<std::string, SteadyClock::time_point>>
      failed_;                                                        // GUARDED_BY(mu_)
  std::unordered_multimap<std::string, Parked> parked_;               // GUARDED_BY(mu_)
  std::unordered_map<std::string, RemoteKvSource> consumer_sources_;  // GUARDED_BY(mu_)
  std::map<std::string, std::string> worker_cache_;                   // GUARDED_BY(mu_)
  std::set<httplib::Client*> bootstrap_calls_;  // in flight, stopped at shutdown. GUARDED_BY(mu_)
  // Consumer: KvWrittenNotification tokens received and not yet matched, with arrival time.
  std::unordered_map<std::string, SteadyClock::time_point> written_;  // GUARDED_BY(mu_)
  std::thread sweeper_;

  ConnectorMetrics metrics_;
};

}  // namespace ferry::connector
