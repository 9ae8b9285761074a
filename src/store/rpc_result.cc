#include "store/rpc_result.h"

#include <string>

#include "store/error_code.h"

namespace ferry::store {

Status ToStatus(const rpc::Result& result) {
  if (result.code() == 0) return OkStatus();
  const auto code = static_cast<ErrorCode>(result.code());
  return StoreError(code,
                    result.message().empty() ? std::string(ErrorCodeName(code)) : result.message());
}

void SetResult(rpc::Result* out, const Status& status) {
  out->set_code(ToInt(ErrorCodeOf(status)));
  if (!status.ok()) out->set_message(status.message());
}

}  // namespace ferry::store
