// MasterLocator: which store master a client's calls go to (MasterClient's HA half).
//
// Three forms of address:
// - "host:port": that master, always (no retries).
// - "h1:p1,h2:p2": a list; the current one until it fails, then the next in turn.
// - "etcd://h1:2379;h2:2379" (also with ','): the master etcd names under
//   /ferry/store/<cluster_id>/leader, read when needed and followed through a watch. When
//   the watch sees the leader change (or its key go: its lease ran out), calls in flight to
//   the old one are cancelled (grpc::ClientContext::TryCancel), so that they are retried on
//   the new leader instead of waiting out their deadline on a paused or dead master.
// Channels are kept per address, each with its own subchannel (no reconnect backoff
// shared with other channels), and dropped when a call through one fails: a master that
// comes back on the same address (a restarted standby that wins) is dialled afresh.
//
// Thread-safe.
//
//   auto locator = ferry::store::MasterLocator::Create("etcd://127.0.0.1:2379", "c1");
//   auto target = (*locator)->Pick(ferry::Deadline::In(std::chrono::seconds(5)));
//   // call target->stub; on UNAVAILABLE: (*locator)->Failed(*target, leader_hint)
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
#include "ferry/status.h"
#include "metadata/etcd_client.h"
#include "store/proto/master.grpc.pb.h"

namespace ferry::store {

class MasterLocator {
 public:
  struct Target {
    std::string address;
    std::shared_ptr<rpc::Master::Stub> stub;
  };

  // `cluster_id` "": $MC_STORE_CLUSTER_ID, else "mooncake_cluster". Errors: InvalidArgument
  // for a malformed address. Contacts nothing (the etcd watch starts on the first Pick).
  static Result<std::unique_ptr<MasterLocator>> Create(const std::string& address,
                                                       const std::string& cluster_id);
  ~MasterLocator();

  // Whether a failed call may be retried on another master (not for a single address).
  bool retries() const { return mode_ != Mode::kSingle; }
  // Whether a leader change cancels calls in flight (etcd://); a list gives each master a
  // share of the deadline instead.
  bool watches_leader() const { return mode_ == Mode::kEtcd; }

  // The master to call now, waiting until `deadline` for a leader to be known. Errors:
  // Unavailable (no leader known before the deadline, with what etcd said).
  Result<Target> Pick(Deadline deadline);
  // A call to `target` was refused as not the leader, or could not reach it: its channel is
  // dropped (dialled afresh next time). A list moves on (to `hint`, the leader the refusal
  // named, if it is in the list); with etcd the master etcd names stays current until the
  // watch sees the key change.
  void Failed(const Target& target, const std::string& hint);

  // Calls in flight, so that a leader change can cancel them. Untrack returns true when the
  // call was cancelled because the leader changed (so it should be retried).
  void Track(grpc::ClientContext* ctx, const std::string& address);
  bool Untrack(grpc::ClientContext* ctx);

  // The master calls go to now ("" while none is known).
  std::string current() const;

  // Called (on the watch's thread) with the new leader's address each time etcd names
  // another one; empty: none. Setting it waits for a call in progress to return.
  void OnLeaderChange(std::function<void(const std::string&)> callback);

 private:
  enum class Mode { kSingle, kList, kEtcd };
  MasterLocator() = default;
  std::shared_ptr<rpc::Master::Stub> StubFor(const std::string& address) FERRY_REQUIRES(mu_);
  // The watch saw the leader key change: `leader` is its new value ("" when deleted).
  void LeaderChanged(const std::string& leader);
  Status StartWatch(Deadline deadline) FERRY_EXCLUDES(mu_);

  Mode mode_ = Mode::kSingle;
  std::vector<std::string> masters_;  // kSingle, kList
  std::shared_ptr<metadata::EtcdClient> etcd_;
  std::string leader_key_;

  mutable Mutex mu_;
  CondVar changed_;
  std::string current_ FERRY_GUARDED_BY(mu_);
  std::string announced_ FERRY_GUARDED_BY(mu_);  // the leader last logged
  size_t next_ FERRY_GUARDED_BY(mu_) = 0;        // kList, the next master to try
  std::map<std::string, std::shared_ptr<rpc::Master::Stub>> stubs_ FERRY_GUARDED_BY(mu_);
  struct InFlight {
    std::string address;
    bool cancelled = false;
  };
  std::unordered_map<grpc::ClientContext*, InFlight> in_flight_ FERRY_GUARDED_BY(mu_);
  Mutex callback_mu_;  // held while on_change_ runs
  std::function<void(const std::string&)> on_change_ FERRY_GUARDED_BY(callback_mu_);
  Mutex watch_mu_;  // one StartWatch at a time
  std::unique_ptr<metadata::EtcdWatch> watch_ FERRY_GUARDED_BY(watch_mu_);
};

}  // namespace ferry::store
