#include "store/master_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "common/deadline.h"
#include "common/log.h"
#include "store/error_code.h"
#include "store/master_locator.h"
#include "store/rpc_auth.h"

namespace ferry::store {
namespace {

Status FromGrpc(std::string_view method, const grpc::Status& s, const std::string& address) {
  const std::string what =
      "master " + address + " " + std::string(method) + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::OUT_OF_RANGE:
      return StoreError(ErrorCode::kInvalidParams, what);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return StoreError(ErrorCode::kRpcFail, what + " (deadline exceeded)");
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return StoreError(ErrorCode::kRpcFail, what + " (refused: check the deployment secret)");
    default:
      return StoreError(ErrorCode::kRpcFail, what);
  }
}

}  // namespace

Result<std::unique_ptr<MasterClient>> MasterClient::Create(const std::string& address,
                                                           const std::string& secret,
                                                           std::chrono::milliseconds timeout,
                                                           const std::string& cluster_id) {
  if (timeout.count() <= 0) {
    return StoreError(ErrorCode::kInvalidParams, "the master RPC timeout must be positive");
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<MasterLocator> locator,
                         MasterLocator::Create(address, cluster_id));
  return std::unique_ptr<MasterClient>(
      new MasterClient(address, secret, timeout, std::move(locator)));
}

MasterClient::MasterClient(std::string address, const std::string& secret,
                           std::chrono::milliseconds timeout,
                           std::unique_ptr<MasterLocator> locator)
    : address_(std::move(address)),
      timeout_(timeout),
      auth_(secret, std::string(kAuthChannel)),
      signed_(!secret.empty()),
      locator_(std::move(locator)) {}

MasterClient::~MasterClient() = default;

std::string MasterClient::current_master() const { return locator_->current(); }

void MasterClient::OnLeaderChange(std::function<void(const std::string&)> callback) {
  locator_->OnLeaderChange(std::move(callback));
}

template <typename Req, typename Rep>
Result<Rep> MasterClient::Call(std::string_view method,
                               grpc::Status (rpc::Master::Stub::*fn)(grpc::ClientContext*,
                                                                     const Req&, Rep*),
                               const Req& req) {
  MasterLocator& locator = *locator_;
  const Deadline deadline = Deadline::In(timeout_);
  std::string tried;
  for (int attempt = 1;; ++attempt) {
    auto target = locator.Pick(deadline);
    if (!target.ok()) {
      return StoreError(ErrorCode::kRpcFail, "master " + address_ + " " + std::string(method) +
                                                 ": " + target.status().message() + tried);
    }
    grpc::ClientContext ctx;
    // A list of masters: one that does not answer must leave time for the others (with
    // etcd, a leader change cancels the call instead).
    Deadline attempt_deadline = deadline;
    if (locator.retries() && !locator.watches_leader()) {
      attempt_deadline = Deadline::Min(deadline, Deadline::In(timeout_ / 3));
    }
    ctx.set_deadline(std::chrono::system_clock::now() + attempt_deadline.Remaining());
    if (signed_) {
      const std::string full = "/ferry.store.rpc.Master/" + std::string(method);
      ctx.AddMetadata(std::string(kAuthMetadataKey), auth_.Sign(AuthMessage(full, req)).ToString());
    }
    locator.Track(&ctx, target->address);
    Rep rep;
    grpc::Status s = ((*target->stub).*fn)(&ctx, req, &rep);
    const bool leader_changed = locator.Untrack(&ctx);
    if (s.ok()) return rep;
    const bool retryable = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED || leader_changed;
    if (!locator.retries() || !retryable || deadline.Expired()) {
      Status st = FromGrpc(method, s, target->address);
      return tried.empty() ? st : Status(st.code(), st.message() + tried);
    }
    tried = " (after " + std::to_string(attempt) + " attempt(s); last at " + target->address +
            ": " + s.error_message() + ")";
    FERRY_LOG_DEBUG("store client: {} to {} failed ({}{}); retrying", method, target->address,
                    s.error_message(), leader_changed ? ", the leader changed" : "");
    if (!leader_changed) {
      std::string hint;
      const auto& md = ctx.GetServerTrailingMetadata();
      auto it = md.find(std::string(kLeaderMetadataKey));
      if (it != md.end()) hint.assign(it->second.data(), it->second.size());
      locator.Failed(*target, hint);
      // Not a hot loop against a master that is going away.
      const auto pause = std::min<std::chrono::nanoseconds>(
          deadline.Remaining(), std::chrono::milliseconds(10 * std::min(attempt, 5)));
      std::this_thread::sleep_for(pause);
    }
  }
}

#define FERRY_MASTER_CALL(Name, Req, Rep)                                  \
  Result<rpc::Rep> MasterClient::Name(const rpc::Req& req) {               \
    return Call<rpc::Req, rpc::Rep>(#Name, &rpc::Master::Stub::Name, req); \
  }

FERRY_MASTER_CALL(MountSegment, MountSegmentRequest, MountSegmentReply)
FERRY_MASTER_CALL(RemountSegments, RemountSegmentsRequest, RemountSegmentsReply)
FERRY_MASTER_CALL(UnmountSegment, UnmountSegmentRequest, UnmountSegmentReply)
FERRY_MASTER_CALL(Ping, PingRequest, PingReply)
FERRY_MASTER_CALL(BatchPutStart, BatchPutStartRequest, BatchPutStartReply)
FERRY_MASTER_CALL(BatchPutEnd, BatchKeysRequest, BatchResultsReply)
FERRY_MASTER_CALL(BatchPutRevoke, BatchKeysRequest, BatchResultsReply)
FERRY_MASTER_CALL(BatchGetReplicaList, BatchKeysRequest, BatchGetReplicaListReply)
FERRY_MASTER_CALL(BatchExist, BatchKeysRequest, BatchExistReply)
FERRY_MASTER_CALL(BatchRemove, BatchRemoveRequest, BatchResultsReply)
FERRY_MASTER_CALL(RemoveByRegex, RemoveByRegexRequest, RemoveCountReply)
FERRY_MASTER_CALL(RemoveAll, RemoveAllRequest, RemoveCountReply)
FERRY_MASTER_CALL(ListKeys, ListKeysRequest, ListKeysReply)
FERRY_MASTER_CALL(GetAllSegments, GetAllSegmentsRequest, GetAllSegmentsReply)
FERRY_MASTER_CALL(Health, HealthRequest, HealthReply)
FERRY_MASTER_CALL(RegisterDiskTier, RegisterDiskTierRequest, RegisterDiskTierReply)
FERRY_MASTER_CALL(PollDiskTasks, PollDiskTasksRequest, DiskTasksReply)
FERRY_MASTER_CALL(ReportDiskTasks, ReportDiskTasksRequest, ReportDiskTasksReply)

#undef FERRY_MASTER_CALL

}  // namespace ferry::store
