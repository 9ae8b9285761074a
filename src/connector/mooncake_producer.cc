// MooncakeConnector, prefill side: keep finished prompts' blocks, push them to decoders that ask,
// free them after the push or after the abort timeout.
#include "common/log.h"
#include "common/mutex.h"
#include "connector/block_runs.h"
#include "connector/internal/mooncake_connector_impl.h"

namespace ferry::connector {

void MooncakeConnectorImpl::OnKeptBlocks(const std::string& request_id,
                                         const std::string& finish_reason,
                                         const std::vector<int32_t>& blocks) {
  MutexLock lock(&mu_);
  auto tag = producer_tags_.find(request_id);
  if (tag == producer_tags_.end()) {
    // Not ours (no transfer id): nothing will ever claim the blocks.
    lock.Unlock();
    if (!blocks.empty()) ReleaseKept(request_id);
    return;
  }
  std::string transfer_id = std::move(tag->second);
  producer_tags_.erase(tag);
  pending_transfers_.erase(transfer_id);
  auto now = SteadyClock::now();
  auto [first, last] = parked_.equal_range(transfer_id);
  std::vector<Parked> waiting;
  for (auto it = first; it != last; ++it) waiting.push_back(std::move(it->second));
  parked_.erase(first, last);

  if (finish_reason != "length" || blocks.empty()) {
    // Aborted, or finished by EOS on its first token: nothing to push. Free now and tell
    // any decoder (now or within the abort timeout) why.
    std::string why =
        "prefill request finished with '" + finish_reason + "' instead of reaching its length cap";
    failed_[transfer_id] = {why, now + options_.abort_timeout};
    lock.Unlock();
    if (!blocks.empty()) ReleaseKept(request_id);
    for (auto& p : waiting) p.call->Resolve(p.decode_req_id, AbortedError(why));
    return;
  }
  metrics_.requests_kept++;
  Ready ready{request_id, blocks, now + options_.abort_timeout};
  if (waiting.empty()) {
    ready_.emplace(transfer_id, std::move(ready));
    return;
  }
  // A decoder got here first: serve the first waiter now (one decode rank per prompt).
  Parked p = std::move(waiting.front());
  DispatchLocked(p.call, p.decode_req_id, std::move(p.blocks), std::move(ready));
  for (size_t i = 1; i < waiting.size(); ++i) {
    waiting[i].call->Resolve(waiting[i].decode_req_id,
                             FailedPreconditionError("transfer already claimed"));
  }
}

void MooncakeConnectorImpl::HandleCall(SideChannelServer::Call call) {
  const KvPullRequest request = call.request();  // copy: `call` moves into the state
  auto state = std::make_shared<CallState>(std::move(call), request.req_blocks.size());
  if (request.req_blocks.empty()) {
    MutexLock lock(&state->mu);
    state->call.Reply({PullStatus::kFinish, {}, {}, ""});
    return;
  }
  MutexLock lock(&mu_);
  for (const auto& [decode_req_id, want] : request.req_blocks) {
    if (stopping_) {
      state->Resolve(decode_req_id, AbortedError("prefill instance is shutting down"));
      continue;
    }
    auto failed = failed_.find(want.transfer_id);
    if (failed != failed_.end()) {
      state->Resolve(decode_req_id, AbortedError(failed->second.first));
      continue;
    }
    auto ready = ready_.find(want.transfer_id);
    if (ready == ready_.end()) {
      if (parked_.size() >= options_.max_waiting_pulls) {
        metrics_.pulls_refused++;
        state->Resolve(decode_req_id,
                       ResourceExhaustedError("prefill has " + std::to_string(parked_.size()) +
                                              " pulls waiting already (max_waiting_pulls)"));
        continue;
      }
      // The decoder arrived before the prefill finished: wait for OnKeptBlocks.
      parked_.emplace(want.transfer_id, Parked{state, decode_req_id, want, SteadyClock::now()});
      continue;
    }
    Ready r = std::move(ready->second);
    ready_.erase(ready);
    DispatchLocked(state, decode_req_id, want, std::move(r));
  }
}

void MooncakeConnectorImpl::DispatchLocked(std::shared_ptr<CallState> call,
                                           std::string decode_req_id, RequestBlocks want,
                                           Ready ready) {
  // The sender owns the claimed blocks from here on and frees them when done.
  senders_->Post([this, call, decode_req_id = std::move(decode_req_id), want = std::move(want),
                  ready = std::move(ready)] {
    KvPullRequest request;
    {
      MutexLock lock(&call->mu);
      request = call->call.request();
    }
    Status s = PushBlocks(request, want, ready.blocks);
    if (!s.ok()) {
      metrics_.transfers_failed++;
      FERRY_LOG_WARN("connector: push of {} to {}:{} failed: {}", want.transfer_id,
                     request.remote_hostname, request.remote_port, s.ToString());
    }
    metrics_.requests_kept--;
    ReleaseKept(ready.request_id);
    call->Resolve(decode_req_id, s);
  });
}

Status MooncakeConnectorImpl::PushBlocks(const KvPullRequest& request, const RequestBlocks& want,
                                         const std::vector<int32_t>& have) {
  if (want.block_ids.size() != 1) {
    return InvalidArgumentError("expected one KV group, got " +
                                std::to_string(want.block_ids.size()));
  }
  if (request.kv_caches_base_addr.size() != 1 ||
      request.block_lens[0] != static_cast<int64_t>(layout_.block_bytes())) {
    return InvalidArgumentError("KV layout mismatch: this prefill uses one region with " +
                                std::to_string(layout_.block_bytes()) +
                                "-byte blocks; the decoder sent " +
                                std::to_string(request.kv_caches_base_addr.size()) + " regions");
  }
  std::vector<int64_t> ours = {layout_.num_layers, layout_.num_kv_heads, layout_.head_dim,
                               layout_.block_size};
  if (!request.ferry_layout.empty() && request.ferry_layout != ours) {
    return InvalidArgumentError("KV layout mismatch: decoder serves a different model shape");
  }
  FERRY_ASSIGN_OR_RETURN(auto runs, PairBlockRuns(have, want.block_ids[0]));
  FERRY_ASSIGN_OR_RETURN(
      SegmentId peer,
      transfer_->OpenSegment(request.remote_hostname + ":" + std::to_string(request.remote_port)));
  // After the writes the decoder's transfer engine is told, so that it can tell a FINISH
  // for KV that really arrived from one that did not.
  const std::string notify =
      request.ferry_token.empty() ? "" : KvWrittenNotification(request.ferry_token);
  if (runs.empty()) {
    return notify.empty() ? OkStatus() : transfer_->SendNotification(peer, notify);
  }
  const uint64_t bb = layout_.block_bytes();
  std::vector<TransferRequest> reqs;
  uint64_t bytes = 0;
  for (const auto& run : runs) {
    if (static_cast<uint64_t>(run.src_block + run.count) * bb > kv_bytes_) {
      return InternalError("kept block id outside the KV region");
    }
    reqs.push_back({TransferOp::kWrite, kv_base_ + run.src_block * bb, peer,
                    request.kv_caches_base_addr[0] + run.dst_block * bb, run.count * bb});
    bytes += run.count * bb;
  }
  auto start = SteadyClock::now();
  Status s = TransferUnlessStopping(reqs, notify);
  if (!s.ok()) {
    // The decoder may have restarted at the same address: look it up afresh next time.
    transfer_->CloseSegment(peer).IgnoreError();
    return s;
  }
  metrics_.ObserveTransferSeconds(
      std::chrono::duration<double>(SteadyClock::now() - start).count());
  metrics_.bytes_sent += bytes;
  metrics_.descriptors += reqs.size();
  metrics_.transfers_ok++;
  return OkStatus();
}

Status MooncakeConnectorImpl::TransferUnlessStopping(const std::vector<TransferRequest>& reqs,
                                                     const std::string& notify) {
  FERRY_ASSIGN_OR_RETURN(BatchId batch, transfer_->AllocateBatch(reqs.size()));
  Status s =
      transfer_->Submit(batch, reqs, options_.transfer_timeout, notify.empty() ? nullptr : &notify);
  if (!s.ok()) {
    transfer_->FreeBatch(batch).IgnoreError();
    return s;
  }
  // Every request ends by transfer_timeout (the notification adds a round trip); check
  // for shutdown between short waits so that stopping never waits for a slow peer.
  const Deadline deadline = Deadline::In(options_.transfer_timeout + std::chrono::seconds(2));
  while (true) {
    s = transfer_->WaitBatch(batch, std::chrono::milliseconds(50));
    if (s.code() != StatusCode::kDeadlineExceeded || deadline.Expired()) break;
    if (Stopping()) {
      // The batch stays with the transfer engine, which fails and frees it when the
      // connector destroys it; the KV blocks stay valid until then.
      return AbortedError("prefill instance is shutting down");
    }
  }
  if (transfer_->FreeBatch(batch).ok()) return s;
  return DeadlineExceededError("KV push still in flight after its deadline");
}

void MooncakeConnectorImpl::SweepLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    cv_.WaitFor(&mu_, std::chrono::milliseconds(200));
    auto now = SteadyClock::now();
    std::vector<std::string> expired_requests;
    for (auto it = ready_.begin(); it != ready_.end();) {
      if (it->second.expires <= now) {
        FERRY_LOG_WARN(
            "connector: no decoder claimed {} within the abort timeout; freeing "
            "its {} blocks",
            it->first, it->second.blocks.size());
        expired_requests.push_back(it->second.request_id);
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    // A pull for a transfer this prefill has the request for waits up to the abort
    // timeout; one for a transfer it has not heard of only unknown_transfer_timeout.
    std::vector<std::pair<Parked, std::string>> late;
    for (auto it = parked_.begin(); it != parked_.end();) {
      const bool known = pending_transfers_.count(it->first) > 0;
      const auto wait = known ? options_.abort_timeout : options_.unknown_transfer_timeout;
      if (it->second.arrived + wait <= now) {
        late.emplace_back(
            std::move(it->second),
            known ? "prefill never finished transfer " + it->first + " within the abort timeout"
                  : "this prefill instance never received a request for "
                    "transfer " +
                        it->first);
        it = parked_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = failed_.begin(); it != failed_.end();) {
      it = it->second.second <= now ? failed_.erase(it) : std::next(it);
    }
    lock.Unlock();
    for (const auto& id : expired_requests) {
      metrics_.expired_requests++;
      metrics_.requests_kept--;
      ReleaseKept(id);
    }
    for (auto& [p, why] : late) p.call->Resolve(p.decode_req_id, DeadlineExceededError(why));
    lock.Lock();
  }
}

}  // namespace ferry::connector
