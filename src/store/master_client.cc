#include "store/master_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "common/host_port.h"
#include "store/error_code.h"
#include "store/rpc_auth.h"

namespace ferry::store {
namespace {

// The largest reply the client accepts: the master's own message limit.
constexpr int kMaxMessageBytes = 64 << 20;

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

Status ToStatus(const rpc::Result& result) {
  if (result.code() == 0) return OkStatus();
  return StoreError(static_cast<ErrorCode>(result.code()),
                    result.message().empty()
                        ? std::string(ErrorCodeName(static_cast<ErrorCode>(result.code())))
                        : result.message());
}

Result<std::unique_ptr<MasterClient>> MasterClient::Create(const std::string& address,
                                                           const std::string& secret,
                                                           std::chrono::milliseconds timeout) {
  auto hp = ParseHostPort(address);
  if (!hp.ok() || hp->port == 0) {
    return StoreError(ErrorCode::kInvalidParams,
                      "master address '" + address + "' is not host:port");
  }
  if (timeout.count() <= 0) {
    return StoreError(ErrorCode::kInvalidParams, "the master RPC timeout must be positive");
  }
  return std::unique_ptr<MasterClient>(new MasterClient(address, secret, timeout));
}

MasterClient::MasterClient(std::string address, const std::string& secret,
                           std::chrono::milliseconds timeout)
    : address_(std::move(address)),
      timeout_(timeout),
      auth_(secret, std::string(kAuthChannel)),
      signed_(!secret.empty()) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  stub_ = rpc::Master::NewStub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
}

template <typename Req, typename Rep>
Result<Rep> MasterClient::Call(std::string_view method,
                               grpc::Status (rpc::Master::Stub::*fn)(grpc::ClientContext*,
                                                                     const Req&, Rep*),
                               const Req& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  if (signed_) {
    const std::string full = "/ferry.store.rpc.Master/" + std::string(method);
    ctx.AddMetadata(std::string(kAuthMetadataKey), auth_.Sign(AuthMessage(full, req)).ToString());
  }
  Rep rep;
  grpc::Status s = ((*stub_).*fn)(&ctx, req, &rep);
  if (!s.ok()) return FromGrpc(method, s, address_);
  return rep;
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

#undef FERRY_MASTER_CALL

}  // namespace ferry::store
