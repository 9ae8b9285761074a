#include "store/error_code.h"

#include <gtest/gtest.h>

namespace ferry::store {
namespace {

TEST(ErrorCodeTest, StoreErrorCarriesTheMooncakeNumber) {
  Status s = StoreError(ErrorCode::kObjectHasLease, "leased");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.detail_code(), -706);
  EXPECT_EQ(ErrorCodeOf(s), ErrorCode::kObjectHasLease);
  EXPECT_EQ(ErrorCodeOf(s.WithContext("remove 'a'")), ErrorCode::kObjectHasLease);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kLeaseExpired), "LEASE_EXPIRED");
  EXPECT_EQ(ToInt(ErrorCode::kNoAvailableHandle), -200);
}

TEST(ErrorCodeTest, PlainStatusesAreClassifiedByCanonicalCode) {
  EXPECT_EQ(ErrorCodeOf(OkStatus()), ErrorCode::kOk);
  EXPECT_EQ(ErrorCodeOf(NotFoundError("x")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(ErrorCodeOf(UnavailableError("x")), ErrorCode::kRpcFail);
  EXPECT_EQ(ErrorCodeOf(InvalidArgumentError("x")), ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(InternalError("x")), ErrorCode::kInternalError);
}

TEST(ErrorCodeTest, OkIsNeverAStoreError) {
  Status s = StoreError(ErrorCode::kOk, "bug");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ErrorCodeOf(s), ErrorCode::kInternalError);
  EXPECT_EQ(OkStatus().WithDetailCode(-704).detail_code(), 0);
}

}  // namespace
}  // namespace ferry::store
