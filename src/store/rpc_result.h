// The store RPCs' Result message (proto/master.proto) to and from ferry::Status, so that
// the master, its clients and the members' Member service map codes the same way.
//
//   ferry::store::rpc::Result r;
//   ferry::store::SetResult(&r, ferry::store::StoreError(ErrorCode::kObjectNotFound, "k"));
//   ferry::Status s = ferry::store::ToStatus(r);  // OBJECT_NOT_FOUND, message "k"
#pragma once

#include "ferry/status.h"
#include "store/proto/master.pb.h"

namespace ferry::store {

// OK for code 0, else StoreError(code, message), the code's name when there is none.
Status ToStatus(const rpc::Result& result);
// The status's ErrorCode and, unless OK, its message.
void SetResult(rpc::Result* out, const Status& status);

}  // namespace ferry::store
