// KvConnector, decode side: find the prefill worker through its bootstrap server, ask it
// to write the prompt's blocks into ours, and tell the engine how it went.
#include <httplib.h>

#include "common/log.h"
#include "connector/internal/kv_connector_impl.h"
#include "http/http_client_timeouts.h"

namespace ferry::connector {

void KvConnectorImpl::OnRemoteKvNeeded(const std::string& request_id,
                                       const std::vector<int32_t>& blocks,
                                       int32_t num_cached_tokens) {
  RemoteKvSource source;
  {
    std::lock_guard lock(mu_);
    auto it = consumer_sources_.find(request_id);
    if (it != consumer_sources_.end()) {
      source = std::move(it->second);
      consumer_sources_.erase(it);
    }
  }
  if (source.transfer_id.empty()) {
    if (control_) {
      control_->FinishRemoteKv(request_id,
                               FailedPreconditionError("no remote KV source for " + request_id),
                               options_.failure_policy);
    }
    return;
  }
  metrics_.requests_waiting++;
  bool posted = pullers_->Post([this, request_id, source, blocks, num_cached_tokens] {
    Pull(request_id, source, blocks, num_cached_tokens);
  });
  if (!posted) {
    metrics_.requests_waiting--;
    if (control_) {
      control_->FinishRemoteKv(request_id, AbortedError("connector is shutting down"),
                               options_.failure_policy);
    }
  }
}

void KvConnectorImpl::Pull(const std::string& request_id, const RemoteKvSource& source,
                           std::vector<int32_t> blocks, int32_t num_cached_tokens) {
  auto finish = [&](const Status& s) {
    metrics_.requests_waiting--;
    if (!s.ok()) {
      metrics_.transfers_failed++;
      if (options_.failure_policy == engine::KvLoadFailurePolicy::kRecompute) {
        metrics_.recomputed++;
      }
      FERRY_LOG_WARN("connector: remote KV for {} ({}) failed: {}", request_id, source.transfer_id,
                     s.ToString());
    }
    if (control_) control_->FinishRemoteKv(request_id, s, options_.failure_policy);
  };
  auto endpoint = ResolveWorker(source);
  if (!endpoint.ok()) return finish(endpoint.status());

  const size_t cached_blocks = static_cast<size_t>(num_cached_tokens / layout_.block_size);
  KvPullRequest req;
  auto local = transfer_->LocalDescriptor();
  req.remote_hostname = local.host;
  req.remote_port = local.rpc_port;
  std::vector<int64_t> wanted(blocks.begin() + std::min(cached_blocks, blocks.size()),
                              blocks.end());
  req.req_blocks[request_id] = RequestBlocks{source.transfer_id, {wanted}};
  req.kv_caches_base_addr = {reinterpret_cast<uint64_t>(kv_base_)};
  req.block_lens = {static_cast<int64_t>(layout_.block_bytes())};
  req.kv_block_lens = req.block_lens;
  req.ferry_layout = {layout_.num_layers, layout_.num_kv_heads, layout_.head_dim,
                      layout_.block_size};

  auto start = SteadyClock::now();
  auto reply = SendPullRequest(*endpoint, req, Deadline::In(options_.abort_timeout));
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kUnavailable) {
      std::lock_guard lock(mu_);
      worker_cache_.erase(source.bootstrap_addr);  // it may come back elsewhere
    }
    return finish(reply.status());
  }
  bool ok =
      reply->status == PullStatus::kFinish &&
      std::find(reply->ok_reqs.begin(), reply->ok_reqs.end(), request_id) != reply->ok_reqs.end();
  if (!ok) {
    return finish(UnavailableError("prefill could not send KV: " +
                                   (reply->err_msg.empty() ? "no reason given" : reply->err_msg)));
  }
  metrics_.bytes_received += wanted.size() * layout_.block_bytes();
  FERRY_LOG_DEBUG("connector: {} blocks for {} arrived in {:.3f} ms", wanted.size(), request_id,
                  std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
  finish(OkStatus());
}

Result<std::string> KvConnectorImpl::ResolveWorker(const RemoteKvSource& source) {
  {
    std::lock_guard lock(mu_);
    auto it = worker_cache_.find(source.bootstrap_addr);
    if (it != worker_cache_.end()) return it->second;
  }
  httplib::Client client(source.bootstrap_addr);
  http::SetTimeouts(client, options_.connector_timeout, options_.connector_timeout);
  auto res = client.Get("/query");
  if (!res) {
    return UnavailableError("bootstrap server " + source.bootstrap_addr +
                            " unreachable: " + httplib::to_string(res.error()));
  }
  if (res->status != 200) {
    return UnavailableError("bootstrap server " + source.bootstrap_addr + " answered HTTP " +
                            std::to_string(res->status));
  }
  FERRY_ASSIGN_OR_RETURN(BootstrapTable table, BootstrapTableFromJson(res->body));
  auto dp = table.find(0);
  if (dp == table.end() || dp->second.worker_addr.count(0) == 0 ||
      dp->second.worker_addr.at(0).count(0) == 0) {
    return UnavailableError("bootstrap server " + source.bootstrap_addr +
                            " has no worker registered for dp 0 / tp 0 / pp 0 yet");
  }
  if (!source.engine_id.empty() && dp->second.engine_id != source.engine_id) {
    return FailedPreconditionError("bootstrap server " + source.bootstrap_addr + " serves engine " +
                                   dp->second.engine_id + ", not " + source.engine_id);
  }
  std::string endpoint = dp->second.worker_addr.at(0).at(0);
  std::lock_guard lock(mu_);
  worker_cache_[source.bootstrap_addr] = endpoint;
  return endpoint;
}

}  // namespace ferry::connector
