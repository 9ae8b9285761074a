#include "store/member_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "store/error_code.h"
#include "store/rpc_auth.h"
#include "store/rpc_result.h"

namespace ferry::store {

MemberClient::MemberClient(std::string address, const std::string& secret,
                           std::chrono::milliseconds timeout)
    : address_(std::move(address)),
      timeout_(timeout),
      auth_(secret, "store-member"),
      stub_(
          rpc::Member::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()))) {
}

template <typename Req, typename Rep, typename Fn>
Result<Rep> MemberClient::Call(const char* method, Fn fn, const Req& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  if (auth_.enabled()) {
    const std::string full = std::string("/ferry.store.rpc.Member/") + method;
    ctx.AddMetadata(std::string(kAuthMetadataKey), auth_.Sign(AuthMessage(full, req)).ToString());
  }
  Rep rep;
  grpc::Status s = ((*stub_).*fn)(&ctx, req, &rep);
  if (!s.ok()) {
    return StoreError(ErrorCode::kRpcFail,
                      "member " + address_ + " " + method + ": " + s.error_message());
  }
  return rep;
}

Result<rpc::ReadDiskReply> MemberClient::ReadDisk(const rpc::ReadDiskRequest& req) {
  return Call<rpc::ReadDiskRequest, rpc::ReadDiskReply>("ReadDisk", &rpc::Member::Stub::ReadDisk,
                                                        req);
}

Status MemberClient::ReleaseDisk(const std::vector<uint64_t>& tokens) {
  rpc::ReleaseDiskRequest req;
  for (uint64_t t : tokens) req.add_tokens(t);
  auto rep = Call<rpc::ReleaseDiskRequest, rpc::ReleaseDiskReply>(
      "ReleaseDisk", &rpc::Member::Stub::ReleaseDisk, req);
  return rep.ok() ? ToStatus(rep->result()) : rep.status();
}

}  // namespace ferry::store
