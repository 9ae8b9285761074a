#include "store/error_code.h"

#include <utility>

namespace ferry::store {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "OK";
    case ErrorCode::kInternalError:
      return "INTERNAL_ERROR";
    case ErrorCode::kBufferOverflow:
      return "BUFFER_OVERFLOW";
    case ErrorCode::kShardIndexOutOfRange:
      return "SHARD_INDEX_OUT_OF_RANGE";
    case ErrorCode::kSegmentNotFound:
      return "SEGMENT_NOT_FOUND";
    case ErrorCode::kSegmentAlreadyExists:
      return "SEGMENT_ALREADY_EXISTS";
    case ErrorCode::kClientNotFound:
      return "CLIENT_NOT_FOUND";
    case ErrorCode::kNoAvailableHandle:
      return "NO_AVAILABLE_HANDLE";
    case ErrorCode::kInvalidVersion:
      return "INVALID_VERSION";
    case ErrorCode::kInvalidKey:
      return "INVALID_KEY";
    case ErrorCode::kWriteFail:
      return "WRITE_FAIL";
    case ErrorCode::kInvalidParams:
      return "INVALID_PARAMS";
    case ErrorCode::kIllegalClient:
      return "ILLEGAL_CLIENT";
    case ErrorCode::kInvalidWrite:
      return "INVALID_WRITE";
    case ErrorCode::kInvalidRead:
      return "INVALID_READ";
    case ErrorCode::kInvalidReplica:
      return "INVALID_REPLICA";
    case ErrorCode::kReplicaIsNotReady:
      return "REPLICA_IS_NOT_READY";
    case ErrorCode::kObjectNotFound:
      return "OBJECT_NOT_FOUND";
    case ErrorCode::kObjectAlreadyExists:
      return "OBJECT_ALREADY_EXISTS";
    case ErrorCode::kObjectHasLease:
      return "OBJECT_HAS_LEASE";
    case ErrorCode::kLeaseExpired:
      return "LEASE_EXPIRED";
    case ErrorCode::kReplicaNotFound:
      return "REPLICA_NOT_FOUND";
    case ErrorCode::kReplicaIsGone:
      return "REPLICA_IS_GONE";
    case ErrorCode::kTransferFail:
      return "TRANSFER_FAIL";
    case ErrorCode::kRpcFail:
      return "RPC_FAIL";
    case ErrorCode::kEtcdOperationError:
      return "ETCD_OPERATION_ERROR";
    case ErrorCode::kUnavailableInCurrentStatus:
      return "UNAVAILABLE_IN_CURRENT_STATUS";
    case ErrorCode::kUnavailableInCurrentMode:
      return "UNAVAILABLE_IN_CURRENT_MODE";
    case ErrorCode::kFileNotFound:
      return "FILE_NOT_FOUND";
    case ErrorCode::kFileOpenFail:
      return "FILE_OPEN_FAIL";
    case ErrorCode::kFileReadFail:
      return "FILE_READ_FAIL";
    case ErrorCode::kFileWriteFail:
      return "FILE_WRITE_FAIL";
  }
  return "UNKNOWN";
}

namespace {

StatusCode CanonicalCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return StatusCode::kOk;
    case ErrorCode::kObjectNotFound:
    case ErrorCode::kSegmentNotFound:
    case ErrorCode::kClientNotFound:
    case ErrorCode::kReplicaNotFound:
    case ErrorCode::kFileNotFound:
      return StatusCode::kNotFound;
    case ErrorCode::kObjectAlreadyExists:
    case ErrorCode::kSegmentAlreadyExists:
      return StatusCode::kAlreadyExists;
    case ErrorCode::kNoAvailableHandle:
      return StatusCode::kResourceExhausted;
    case ErrorCode::kBufferOverflow:
    case ErrorCode::kShardIndexOutOfRange:
      return StatusCode::kOutOfRange;
    case ErrorCode::kInvalidVersion:
    case ErrorCode::kInvalidKey:
    case ErrorCode::kInvalidParams:
    case ErrorCode::kInvalidWrite:
    case ErrorCode::kInvalidRead:
    case ErrorCode::kInvalidReplica:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kIllegalClient:
      return StatusCode::kPermissionDenied;
    case ErrorCode::kObjectHasLease:
    case ErrorCode::kReplicaIsNotReady:
    case ErrorCode::kUnavailableInCurrentStatus:
    case ErrorCode::kUnavailableInCurrentMode:
      return StatusCode::kFailedPrecondition;
    case ErrorCode::kLeaseExpired:
      return StatusCode::kAborted;
    case ErrorCode::kReplicaIsGone:
    case ErrorCode::kTransferFail:
    case ErrorCode::kWriteFail:
      return StatusCode::kDataLoss;
    case ErrorCode::kRpcFail:
    case ErrorCode::kEtcdOperationError:
      return StatusCode::kUnavailable;
    case ErrorCode::kFileOpenFail:
    case ErrorCode::kFileReadFail:
    case ErrorCode::kFileWriteFail:
    case ErrorCode::kInternalError:
      return StatusCode::kInternal;
  }
  return StatusCode::kInternal;
}

}  // namespace

Status StoreError(ErrorCode code, std::string message) {
  if (code == ErrorCode::kOk) {
    return InternalError("StoreError(OK): " + message)
        .WithDetailCode(ToInt(ErrorCode::kInternalError));
  }
  return Status(CanonicalCode(code), std::move(message)).WithDetailCode(ToInt(code));
}

ErrorCode ErrorCodeOf(const Status& status) {
  if (status.ok()) return ErrorCode::kOk;
  if (status.detail_code() != 0) return static_cast<ErrorCode>(status.detail_code());
  switch (status.code()) {
    case StatusCode::kNotFound:
      return ErrorCode::kObjectNotFound;
    case StatusCode::kAlreadyExists:
      return ErrorCode::kObjectAlreadyExists;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return ErrorCode::kInvalidParams;
    case StatusCode::kResourceExhausted:
      return ErrorCode::kNoAvailableHandle;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return ErrorCode::kRpcFail;
    case StatusCode::kDataLoss:
      return ErrorCode::kTransferFail;
    default:
      return ErrorCode::kInternalError;
  }
}

}  // namespace ferry::store
