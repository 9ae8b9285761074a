// MasterClient: the store master's gRPC calls (proto/master.proto) with a deadline, the
// deployment's auth tag and the error mapping that every store client needs.
//
//   FERRY_ASSIGN_OR_RETURN(auto master, MasterClient::Create("127.0.0.1:50051", secret,
//                                                            std::chrono::seconds(5)));
//   rpc::BatchKeysRequest req;
//   req.add_keys("a");
//   FERRY_ASSIGN_OR_RETURN(rpc::BatchExistReply rep, master->BatchExist(req));
//   Status first = ToStatus(rep.results(0).result());
//
// A call's Status is not OK only when the call as a whole failed: the master unreachable
// or past the deadline (RPC_FAIL), the call refused (bad secret: RPC_FAIL; over a limit or
// malformed: INVALID_PARAMS). Per-key outcomes are in the reply's Result messages.
//
// Masters with HA (docs/store.md): the address may be
// - "etcd://h1:2379;h2:2379": the leader is read from etcd (the key
//   /ferry/store/<cluster_id>/leader) and followed through a watch; when it changes, calls
//   in flight to the old leader are cancelled and sent to the new one;
// - "h1:50051,h2:50051": a list of masters, tried in turn until one answers as leader.
// A call refused by a standby (UNAVAILABLE, naming the leader in x-ferry-leader), or that
// cannot reach the master it picked, is retried against the leader until the call's
// deadline (`timeout`); a single "host:port" is never retried. A retried write may have
// taken effect at the old leader (a PutEnd then reports the object as not in progress).
//
// Thread safety: every method is thread-safe (one gRPC channel per master, shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/message_auth.h"
#include "ferry/status.h"
#include "store/proto/master.grpc.pb.h"
#include "store/rpc_result.h"

namespace ferry::store {

class MasterLocator;

class MasterClient {
 public:
  // `address`: "host:port", a list, or "etcd://..." (above). `cluster_id` names the HA
  // cluster in etcd ("": $MC_STORE_CLUSTER_ID, else "mooncake_cluster"). Connects lazily
  // (the first call connects). Errors: InvalidArgument for a malformed address.
  static Result<std::unique_ptr<MasterClient>> Create(const std::string& address,
                                                      const std::string& secret,
                                                      std::chrono::milliseconds timeout,
                                                      const std::string& cluster_id = "");
  ~MasterClient();

  // As given to Create.
  const std::string& address() const { return address_; }
  // The master calls go to now ("" while no leader is known).
  std::string current_master() const;
  // With etcd://: `callback` runs (on the watch's thread; keep it short) with the new
  // leader's address when etcd names another one, "" when none. nullptr clears it (waiting
  // for a call in progress).
  void OnLeaderChange(std::function<void(const std::string&)> callback);

  Result<rpc::MountSegmentReply> MountSegment(const rpc::MountSegmentRequest& req);
  Result<rpc::RemountSegmentsReply> RemountSegments(const rpc::RemountSegmentsRequest& req);
  Result<rpc::UnmountSegmentReply> UnmountSegment(const rpc::UnmountSegmentRequest& req);
  Result<rpc::PingReply> Ping(const rpc::PingRequest& req);
  Result<rpc::BatchPutStartReply> BatchPutStart(const rpc::BatchPutStartRequest& req);
  Result<rpc::BatchResultsReply> BatchPutEnd(const rpc::BatchKeysRequest& req);
  Result<rpc::BatchResultsReply> BatchPutRevoke(const rpc::BatchKeysRequest& req);
  Result<rpc::BatchGetReplicaListReply> BatchGetReplicaList(const rpc::BatchKeysRequest& req);
  Result<rpc::BatchExistReply> BatchExist(const rpc::BatchKeysRequest& req);
  Result<rpc::BatchResultsReply> BatchRemove(const rpc::BatchRemoveRequest& req);
  Result<rpc::RemoveCountReply> RemoveByRegex(const rpc::RemoveByRegexRequest& req);
  Result<rpc::RemoveCountReply> RemoveAll(const rpc::RemoveAllRequest& req);
  Result<rpc::ListKeysReply> ListKeys(const rpc::ListKeysRequest& req);
  Result<rpc::GetAllSegmentsReply> GetAllSegments(const rpc::GetAllSegmentsRequest& req);
  Result<rpc::HealthReply> Health(const rpc::HealthRequest& req);
  Result<rpc::RegisterDiskTierReply> RegisterDiskTier(const rpc::RegisterDiskTierRequest& req);
  Result<rpc::DiskTasksReply> PollDiskTasks(const rpc::PollDiskTasksRequest& req);
  Result<rpc::ReportDiskTasksReply> ReportDiskTasks(const rpc::ReportDiskTasksRequest& req);

 private:
  MasterClient(std::string address, const std::string& secret, std::chrono::milliseconds timeout,
               std::unique_ptr<MasterLocator> locator);

  template <typename Req, typename Rep>
  Result<Rep> Call(std::string_view method,
                   grpc::Status (rpc::Master::Stub::*fn)(grpc::ClientContext*, const Req&, Rep*),
                   const Req& req);

  const std::string address_;
  const std::chrono::milliseconds timeout_;
  MessageAuth auth_;  // disabled when the secret is empty
  const bool signed_;
  const std::unique_ptr<MasterLocator> locator_;  // which master to call, and following it
};

}  // namespace ferry::store
