// MooncakeConnector, decode side: find the prefill worker through its bootstrap server, ask it
// to write the prompt's blocks into ours, and tell the engine how it went.
#include <httplib.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/mutex.h"
#include "connector/internal/mooncake_connector_impl.h"
#include "http/http_client_timeouts.h"

namespace ferry::connector {
namespace {

// KV-written notifications nobody matched are forgotten after this long (the FINISH that
// would have matched them ended long ago), and at most this many are kept.
constexpr auto kWrittenNoteTtl = std::chrono::seconds(60);
constexpr size_t kMaxWrittenNotes = 65536;
constexpr std::string_view kWrittenPrefix = "ferry-kv-written:";

}  // namespace

Status MooncakeConnectorImpl::CheckBootstrapAllowed(const RemoteKvSource& source) {
  auto normalized = NormalizeBootstrapAddr(source.bootstrap_addr);
  if (!normalized.ok()) return normalized.status().WithContext("remote_bootstrap_addr");
  if (allowed_bootstrap_.count(*normalized) > 0) return OkStatus();
  if (!source.proxy_auth.empty() && proxy_auth_.enabled()) {
    auto tag = AuthTag::Parse(source.proxy_auth);
    Status s = tag.ok() ? proxy_auth_.Verify(ProxyAuthMessage(source), *tag) : tag.status();
    if (s.ok()) return OkStatus();
    metrics_.bootstrap_refused++;
    return PermissionDeniedError("kv_transfer_params.ferry_proxy_auth does not verify: " +
                                 s.message())
        .WithField("kv_transfer_params.ferry_proxy_auth");
  }
  if (allowed_bootstrap_.empty() && !proxy_auth_.enabled()) return OkStatus();  // open mode
  metrics_.bootstrap_refused++;
  return PermissionDeniedError(
      "remote_bootstrap_addr " + *normalized +
      " is not a bootstrap server this decoder may contact: it is not in "
      "allowed_bootstrap_addrs (FERRY_KV_ALLOWED_BOOTSTRAP)" +
      (proxy_auth_.enabled() ? " and the request was not signed by a ferry proxy holding the "
                               "deployment secret"
                             : ""));
}

void MooncakeConnectorImpl::OnRemoteKvNeeded(const std::string& request_id,
                                             const std::vector<int32_t>& blocks,
                                             int32_t num_cached_tokens) {
  RemoteKvSource source;
  {
    MutexLock lock(&mu_);
    auto it = consumer_sources_.find(request_id);
    if (it != consumer_sources_.end()) {
      source = std::move(it->second);
      consumer_sources_.erase(it);
    }
  }
  if (source.transfer_id.empty()) {
    const bool fail = options_.failure_policy == engine::KvLoadFailurePolicy::kFail;
    Report({request_id, engine::KvTransferKind::kLoad,
            FailedPreconditionError("no remote KV source for " + request_id), fail});
    return;
  }
  metrics_.requests_waiting++;
  bool posted = pullers_->Post([this, request_id, source, blocks, num_cached_tokens] {
    Pull(request_id, source, blocks, num_cached_tokens);
  });
  if (!posted) FinishPull(request_id, source, AbortedError("connector is shutting down"));
}

void MooncakeConnectorImpl::FinishPull(const std::string& request_id, const RemoteKvSource& source,
                                       const Status& s) {
  metrics_.requests_waiting--;
  if (!s.ok()) {
    metrics_.transfers_failed++;
    if (options_.failure_policy == engine::KvLoadFailurePolicy::kRecompute) metrics_.recomputed++;
    FERRY_LOG_WARN("connector: remote KV for {} ({}) failed: {}", request_id, source.transfer_id,
                   s.ToString());
  }
  // A failed pull may still see writes arrive (see late_write_guard); a pull that never
  // reached a prefill worker cannot.
  const auto hold = s.ok() ? std::chrono::milliseconds(0) : options_.late_write_guard;
  const bool fail = !s.ok() && options_.failure_policy == engine::KvLoadFailurePolicy::kFail;
  Report({request_id, engine::KvTransferKind::kLoad,
          fail ? s.WithContext("remote KV load failed") : s, fail, hold});
}

void MooncakeConnectorImpl::Pull(const std::string& request_id, const RemoteKvSource& source,
                                 std::vector<int32_t> blocks, int32_t num_cached_tokens) {
  if (Stopping()) return FinishPull(request_id, source, AbortedError("connector is stopping"));
  auto endpoint = ResolveWorker(source);
  if (!endpoint.ok()) return FinishPull(request_id, source, endpoint.status());

  const size_t cached_blocks = static_cast<size_t>(num_cached_tokens / layout_.block_size);
  KvPullRequest req;
  auto local = transfer_->LocalDescriptor();
  req.remote_hostname = local.host;
  req.remote_port = local.rpc_port;
  std::vector<int64_t> wanted(blocks.begin() + std::min(cached_blocks, blocks.size()),
                              blocks.end());
  const size_t nblocks = wanted.size();
  req.req_blocks[request_id] = RequestBlocks{source.transfer_id, {std::move(wanted)}};
  req.kv_caches_base_addr = {reinterpret_cast<uint64_t>(kv_base_)};
  req.block_lens = {static_cast<int64_t>(layout_.block_bytes())};
  req.kv_block_lens = req.block_lens;
  req.ferry_layout = {layout_.num_layers, layout_.num_kv_heads, layout_.head_dim,
                      layout_.block_size};
  req.ferry_token = crypto::RandomHex(16);

  const auto load_timeout =
      options_.kv_load_timeout.count() > 0 ? options_.kv_load_timeout : options_.abort_timeout;
  const auto start = SteadyClock::now();
  const std::string token = req.ferry_token;
  Status started = side_client_->Start(
      *endpoint, req, Deadline::In(load_timeout),
      [this, request_id, source, token, nblocks, start](Result<KvPullReply> reply) {
        OnPullReply(request_id, source, token, nblocks, start, std::move(reply));
      });
  if (!started.ok()) FinishPull(request_id, source, started);
}

void MooncakeConnectorImpl::OnPullReply(const std::string& request_id, const RemoteKvSource& source,
                                        const std::string& token, size_t blocks,
                                        SteadyClock::time_point start, Result<KvPullReply> reply) {
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kPermissionDenied) metrics_.unauthenticated++;
    if (reply.status().code() == StatusCode::kUnavailable) {
      MutexLock lock(&mu_);
      worker_cache_.erase(source.bootstrap_addr);  // it may come back elsewhere
    }
    return FinishPull(request_id, source, reply.status());
  }
  bool ok =
      reply->status == PullStatus::kFinish &&
      std::find(reply->ok_reqs.begin(), reply->ok_reqs.end(), request_id) != reply->ok_reqs.end();
  if (!ok) {
    return FinishPull(
        request_id, source,
        UnavailableError("prefill could not send KV: " +
                         (reply->err_msg.empty() ? "no reason given" : reply->err_msg)));
  }
  // The producer notifies our transfer engine after its writes and before it replies, so
  // the notification is here by now if the KV is.
  if (!TakeWrittenNotification(token)) {
    metrics_.unwritten_finish++;
    return FinishPull(request_id, source,
                      DataLossError("prefill answered FINISH but its KV-written notification "
                                    "never reached this decoder's transfer engine"));
  }
  metrics_.bytes_received += blocks * layout_.block_bytes();
  FERRY_LOG_DEBUG("connector: {} blocks for {} arrived in {:.3f} ms", blocks, request_id,
                  std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
  FinishPull(request_id, source, OkStatus());
}

bool MooncakeConnectorImpl::TakeWrittenNotification(const std::string& token) {
  std::vector<Notification> notes = transfer_->TakeNotifications();
  const auto now = SteadyClock::now();
  MutexLock lock(&mu_);
  for (const Notification& n : notes) {
    std::string_view m = n.message;
    if (m.substr(0, kWrittenPrefix.size()) != kWrittenPrefix) continue;
    written_[std::string(m.substr(kWrittenPrefix.size()))] = now;
  }
  if (written_.size() > kMaxWrittenNotes / 2) {
    for (auto it = written_.begin(); it != written_.end();) {
      it = now - it->second > kWrittenNoteTtl ? written_.erase(it) : std::next(it);
    }
    while (written_.size() > kMaxWrittenNotes) written_.erase(written_.begin());
  }
  return written_.erase(token) > 0;
}

Result<std::string> MooncakeConnectorImpl::ResolveWorker(const RemoteKvSource& source) {
  {
    MutexLock lock(&mu_);
    auto it = worker_cache_.find(source.bootstrap_addr);
    if (it != worker_cache_.end()) return it->second;
  }
  httplib::Client client(source.bootstrap_addr);
  http::SetTimeouts(client, options_.connector_timeout, options_.connector_timeout);
  {
    MutexLock lock(&mu_);
    if (stopping_) return AbortedError("connector is stopping");
    bootstrap_calls_.insert(&client);
  }
  auto res = AuthenticatedCall(client, "GET", "/query", "");
  {
    MutexLock lock(&mu_);
    bootstrap_calls_.erase(&client);
  }
  if (!res.ok()) return res.status().WithContext(source.bootstrap_addr);
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
  MutexLock lock(&mu_);
  worker_cache_[source.bootstrap_addr] = endpoint;
  return endpoint;
}

}  // namespace ferry::connector
