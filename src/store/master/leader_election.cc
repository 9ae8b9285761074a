#include "store/master/leader_election.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/deadline.h"
#include "common/log.h"
#include "common/mutex.h"

namespace ferry::store {
namespace {

using metadata::EtcdCompare;
using metadata::EtcdOp;
using metadata::EtcdTxn;
using metadata::EtcdWatchEvent;

int64_t ToNs(LeaderElection::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

LeaderElection::LeaderElection(std::shared_ptr<metadata::EtcdClient> etcd, Options options)
    : etcd_(std::move(etcd)), options_(std::move(options)) {}

LeaderElection::~LeaderElection() {
  Stop();
  Resign();
  if (keepalive_.joinable()) keepalive_.join();
}

void LeaderElection::Stop() {
  MutexLock lock(&mu_);
  stopping_ = true;
  cv_.SignalAll();
}

bool LeaderElection::IsLeader() const {
  return ToNs(Clock::now()) < valid_until_ns_.load(std::memory_order_acquire);
}

int64_t LeaderElection::term() const {
  MutexLock lock(&mu_);
  return leading_ ? term_ : 0;
}

std::string LeaderElection::holder() const {
  MutexLock lock(&mu_);
  return holder_;
}

std::string LeaderElection::lost_reason() const {
  MutexLock lock(&mu_);
  return lost_reason_;
}

void LeaderElection::EndTerm(const std::string& reason) {
  if (!leading_) return;
  valid_until_ns_.store(0, std::memory_order_release);
  FERRY_LOG_WARN("master: no longer the leader of {} (term {}): {}", options_.key, term_, reason);
  leading_ = false;
  term_ = 0;
  lost_reason_ = reason;
  holder_.clear();
  cv_.SignalAll();
}

Result<int64_t> LeaderElection::Campaign() {
  if (keepalive_.joinable()) keepalive_.join();  // the last term's renewals have stopped
  bool outage_logged = false;
  auto pause = [&](std::chrono::milliseconds d) {
    MutexLock lock(&mu_);
    cv_.WaitFor(&mu_, d, [&]() FERRY_REQUIRES(mu_) { return stopping_; });
  };
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return AbortedError("master: stopping");
      key_changed_ = false;
    }
    const Clock::time_point sent = Clock::now();
    auto lease = etcd_->LeaseGrant(options_.lease_ttl, Deadline::In(options_.rpc_timeout));
    auto campaign = [&]() -> Result<metadata::EtcdTxnResult> {
      if (!lease.ok()) return lease.status();
      EtcdTxn t;
      t.compares.push_back(EtcdCompare::CreateRevision(options_.key, EtcdCompare::kEqual, 0));
      t.success.push_back(EtcdOp::Put(options_.key, options_.value, lease->id));
      t.failure.push_back(EtcdOp::Get(options_.key));
      return etcd_->Txn(t, Deadline::In(options_.rpc_timeout));
    };
    Result<metadata::EtcdTxnResult> txn = campaign();
    if (!txn.ok()) {
      if (!outage_logged) {
        FERRY_LOG_WARN("master: cannot campaign for {} ({}); retrying", options_.key,
                       txn.status().ToString());
        outage_logged = true;
      }
      if (lease.ok()) (void)etcd_->LeaseRevoke(lease->id, Deadline::In(options_.rpc_timeout));
      pause(std::chrono::milliseconds(200));
      continue;
    }
    if (txn->succeeded) {
      MutexLock lock(&mu_);
      leading_ = true;
      lease_ = lease->id;
      term_ = txn->revision;
      lost_reason_.clear();
      holder_ = options_.value;
      valid_until_ns_.store(ToNs(sent + lease->ttl), std::memory_order_release);
      keepalive_ =
          std::thread([this, id = lease->id, ttl = lease->ttl] { KeepAliveLoop(id, ttl); });
      FERRY_LOG_INFO("master: elected leader of {} (term {}, lease ttl {} s)", options_.key, term_,
                     lease->ttl.count());
      return term_;
    }
    // Someone leads: give our lease back and wait until the key goes (or a lease's worth of
    // time, in case the watch cannot be set up), then try again.
    (void)etcd_->LeaseRevoke(lease->id, Deadline::In(options_.rpc_timeout));
    {
      MutexLock lock(&mu_);
      holder_.clear();  // the failure branch's one range: the holder, if it still holds
      if (!txn->ranges.empty() && !txn->ranges.front().empty()) {
        holder_ = txn->ranges.front().front().value;
      }
    }
    if (outage_logged) {
      FERRY_LOG_INFO("master: etcd answers again; standing by");
      outage_logged = false;
    }
    auto watch = etcd_->Watch(
        options_.key, "", txn->revision + 1,
        [this](const std::vector<EtcdWatchEvent>& events, int64_t) {
          MutexLock lock(&mu_);
          for (const EtcdWatchEvent& e : events) {
            if (e.type == EtcdWatchEvent::kPut) {
              holder_ = e.kv.value;
              continue;
            }
            holder_.clear();
            key_changed_ = true;
            cv_.SignalAll();
          }
        },
        nullptr);
    MutexLock lock(&mu_);
    cv_.WaitFor(&mu_, options_.lease_ttl,
                [&]() FERRY_REQUIRES(mu_) { return stopping_ || key_changed_; });
  }
}

void LeaderElection::KeepAliveLoop(int64_t lease, std::chrono::seconds ttl) {
  const auto interval = std::max<std::chrono::milliseconds>(
      std::chrono::milliseconds(100),
      std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 4);
  for (;;) {
    {
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, interval,
                  [&]() FERRY_REQUIRES(mu_) { return stopping_ || !leading_ || lease_ != lease; });
      if (stopping_ || !leading_ || lease_ != lease) return;
    }
    const Clock::time_point sent = Clock::now();
    auto renewed = etcd_->LeaseKeepAlive(lease, Deadline::In(interval));
    MutexLock lock(&mu_);
    if (!leading_ || lease_ != lease) return;
    if (renewed.ok() && renewed->count() > 0) {
      const int64_t until = ToNs(sent + *renewed);
      if (!IsLeader()) {
        // Renewed, but only after the lease may already have run out here: another master
        // may have won in between, so the term is over whatever etcd says now.
        EndTerm("the lease ran out before a renewal was accepted");
        return;
      }
      valid_until_ns_.store(std::max(until, valid_until_ns_.load()), std::memory_order_release);
      continue;
    }
    if (renewed.ok() || renewed.status().code() == StatusCode::kNotFound) {
      EndTerm("etcd says the lease has expired");
      return;
    }
    if (!IsLeader()) {
      EndTerm("no lease renewal accepted before it ran out (" + renewed.status().ToString() + ")");
      return;
    }
  }
}

void LeaderElection::WaitLost() {
  MutexLock lock(&mu_);
  while (leading_ && !stopping_) {
    const int64_t until = valid_until_ns_.load();
    if (ToNs(Clock::now()) >= until) {
      EndTerm("the lease ran out (no renewal accepted in time)");
      break;
    }
    cv_.WaitUntil(&mu_, Clock::time_point(std::chrono::nanoseconds(until)));
  }
}

void LeaderElection::Resign() {
  int64_t lease = 0;
  {
    MutexLock lock(&mu_);
    if (!leading_) return;
    lease = lease_;
    EndTerm("resigned");
  }
  Status s = etcd_->LeaseRevoke(lease, Deadline::In(options_.rpc_timeout));
  if (!s.ok()) FERRY_LOG_WARN("master: cannot revoke lease {}: {}", lease, s.ToString());
}

Result<std::string> LeaderElection::Leader() const {
  FERRY_ASSIGN_OR_RETURN(metadata::EtcdRange r,
                         etcd_->Range(options_.key, "", 1, Deadline::In(options_.rpc_timeout)));
  if (r.kvs.empty()) return std::string();
  return r.kvs.front().value;
}

}  // namespace ferry::store
