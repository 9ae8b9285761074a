// MemberClient: a reader's calls to a member's Member service (proto/master.proto), which
// serves the member's SSD-tier copies: ReadDisk stages them in the member's registered
// memory, the reader pulls them over the transfer engine, ReleaseDisk frees the staging.
// Private to the ferry_store library.
//
//   MemberClient m("10.0.0.2:41234", secret, std::chrono::seconds(5));
//   rpc::ReadDiskRequest req;
//   req.add_keys("k");
//   FERRY_ASSIGN_OR_RETURN(rpc::ReadDiskReply rep, m.ReadDisk(req));
//   // ... read rep.items(0).staged() ..., then (or in the next ReadDisk's `release`):
//   (void)m.ReleaseDisk({rep.token()});
//
// Errors: RPC_FAIL when the member does not answer within the deadline.
// Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/message_auth.h"
#include "ferry/status.h"
#include "store/proto/master.grpc.pb.h"

namespace ferry::store {

class MemberClient {
 public:
  MemberClient(std::string address, const std::string& secret, std::chrono::milliseconds timeout);

  Result<rpc::ReadDiskReply> ReadDisk(const rpc::ReadDiskRequest& req);
  Status ReleaseDisk(const std::vector<uint64_t>& tokens);

 private:
  template <typename Req, typename Rep, typename Fn>
  Result<Rep> Call(const char* method, Fn fn, const Req& req);

  const std::string address_;
  const std::chrono::milliseconds timeout_;
  MessageAuth auth_;
  std::unique_ptr<rpc::Member::Stub> stub_;
};

}  // namespace ferry::store
