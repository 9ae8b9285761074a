// LeaderElection: one leader among the masters of a cluster, through an etcd key held
// under a lease (`ferry master --etcd_endpoints ... --cluster_id C`).
//
// Campaign grants a lease of lease_ttl and creates `key` (value: this master's address) in
// a transaction that only succeeds while the key does not exist; while another master
// holds it, Campaign watches the key and tries again the moment it is deleted (the holder
// resigned, or its lease expired). The term a win returns is the key's create revision:
// EtcdLogStorage fences every log write on it.
//
// While leading, a thread renews the lease every lease_ttl / 4. The lease is held, as far
// as this process knows, until `renewal sent + lease_ttl` of the last renewal etcd
// accepted: etcd counts the TTL from when it received the renewal, which is later, so
// IsLeader() turns false no later than etcd lets another master win. A renewal refused
// (the lease expired) or none accepted before that time ends the term: IsLeader() is false
// from then on and WaitLost returns. A process paused past its lease (SIGSTOP) sees it on
// waking, before it answers anything: IsLeader() compares against the clock.
//
// Thread-safe.
//
//   auto election = ferry::store::LeaderElection(etcd, {.key = "/ferry/store/c1/leader",
//                                                       .value = "10.0.0.1:50051"});
//   auto term = election.Campaign();  // blocks until elected or Stop()
//   if (term.ok()) {
//     // serve while election.IsLeader() ...
//     election.WaitLost();
//   }
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "ferry/status.h"
#include "metadata/etcd_client.h"

namespace ferry::store {

class LeaderElection {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string key;    // required
    std::string value;  // what the key holds while this master leads
    std::chrono::seconds lease_ttl{2};
    std::chrono::milliseconds rpc_timeout{1000};  // per etcd call while campaigning
  };

  LeaderElection(std::shared_ptr<metadata::EtcdClient> etcd, Options options);
  ~LeaderElection();  // Stop(), then Resign()

  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Blocks until this master leads; returns the term (the key's create revision).
  // Aborted after Stop(). etcd being unreachable is retried, not returned (logged once
  // per outage).
  Result<int64_t> Campaign();
  // Whether the current term is held (the lease certainly not expired yet).
  bool IsLeader() const;
  // Blocks until the term ends (lease lost or refused, or Stop()).
  void WaitLost();
  // Ends the term now: revokes the lease, so that another master wins at once.
  void Resign();
  // Makes Campaign and WaitLost return. Idempotent.
  void Stop();

  // The leader's value as etcd has it now ("" when nobody leads): one etcd read.
  Result<std::string> Leader() const;
  // The leader's value as this election last saw it (its own while leading; the holder
  // its campaign found or watched; "" when unknown). No etcd call.
  std::string holder() const;
  // The current term (0 when not leading) and why the last one ended ("" while leading).
  int64_t term() const;
  std::string lost_reason() const;

 private:
  void KeepAliveLoop(int64_t lease, std::chrono::seconds ttl);
  void EndTerm(const std::string& reason) FERRY_REQUIRES(mu_);

  const std::shared_ptr<metadata::EtcdClient> etcd_;
  const Options options_;

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  bool leading_ FERRY_GUARDED_BY(mu_) = false;
  int64_t lease_ FERRY_GUARDED_BY(mu_) = 0;
  int64_t term_ FERRY_GUARDED_BY(mu_) = 0;
  std::string lost_reason_ FERRY_GUARDED_BY(mu_);
  bool key_changed_ FERRY_GUARDED_BY(mu_) = false;  // the watch saw the key go
  std::string holder_ FERRY_GUARDED_BY(mu_);        // the leader key's value as last seen
  std::atomic<int64_t> valid_until_ns_{0};          // steady_clock; the lease is held before it
  std::thread keepalive_;
};

}  // namespace ferry::store
