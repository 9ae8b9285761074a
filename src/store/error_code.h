// The store's error codes: Mooncake Store's numbers, so that callers written against
// Mooncake's Python API (which returns these integers) behave the same on Ferry.
//
// Every store call reports failure as a ferry::Status whose canonical code is the closest
// StatusCode and whose detail_code() is the ErrorCode below:
//
//   Status s = StoreError(ErrorCode::kObjectHasLease, "key 'a' is leased for 3 s more");
//   s.code();          // StatusCode::kFailedPrecondition
//   ErrorCodeOf(s);    // ErrorCode::kObjectHasLease (-706)
//
// ErrorCodeOf also classifies statuses that did not come from StoreError (a transport's
// Unavailable becomes kTransferFail only where the caller says so; see ErrorCodeOf).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::store {

enum class ErrorCode : int32_t {
  kOk = 0,
  kInternalError = -1,
  kBufferOverflow = -10,
  kShardIndexOutOfRange = -100,
  kSegmentNotFound = -101,
  kSegmentAlreadyExists = -102,
  kClientNotFound = -103,
  kNoAvailableHandle = -200,  // No space for a put, even after eviction.
  kInvalidVersion = -300,
  kInvalidKey = -400,
  kWriteFail = -500,
  kInvalidParams = -600,
  kIllegalClient = -601,
  kInvalidWrite = -700,
  kInvalidRead = -701,
  kInvalidReplica = -702,
  kReplicaIsNotReady = -703,  // The object exists but no replica is complete yet.
  kObjectNotFound = -704,
  kObjectAlreadyExists = -705,
  kObjectHasLease = -706,
  kLeaseExpired = -707,  // The read lease ran out before the bytes arrived.
  kReplicaNotFound = -710,
  kReplicaIsGone = -712,
  kTransferFail = -800,
  kRpcFail = -900,
  kEtcdOperationError = -1000,
  kUnavailableInCurrentStatus = -1010,
  kUnavailableInCurrentMode = -1011,
  kFileNotFound = -1100,
  kFileOpenFail = -1101,
  kFileReadFail = -1102,
  kFileWriteFail = -1103,
};

// "OBJECT_HAS_LEASE", ... (Mooncake's names); "UNKNOWN" for a number not above.
std::string_view ErrorCodeName(ErrorCode code);

// A non-OK Status carrying `code` (must not be kOk) as its detail code, with the closest
// canonical StatusCode (kObjectNotFound -> kNotFound, kNoAvailableHandle ->
// kResourceExhausted, kRpcFail -> kUnavailable, ...).
Status StoreError(ErrorCode code, std::string message);

// The store code of a status: kOk for OK, detail_code() when StoreError made it, otherwise
// by canonical code (kNotFound -> kObjectNotFound, kInvalidArgument -> kInvalidParams,
// kResourceExhausted -> kNoAvailableHandle, kUnavailable / kDeadlineExceeded -> kRpcFail,
// anything else -> kInternalError).
ErrorCode ErrorCodeOf(const Status& status);

// The integer Python callers see: 0 or the negative code.
inline int32_t ToInt(ErrorCode code) { return static_cast<int32_t>(code); }

}  // namespace ferry::store
