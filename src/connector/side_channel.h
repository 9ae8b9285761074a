// The side channel between decode and prefill workers: ZeroMQ ROUTER on prefill, one
// DEALER per call on decode, msgpack payloads (side_channel_messages.h).
//
// Prefill side:
//   auto server = SideChannelServer::Create("127.0.0.1", 0,
//       [](SideChannelServer::Call call) {   // runs on the server thread: hand off, return
//         pool.Post([call = std::move(call)] { ...; call.Reply(reply); });
//       });
//   server->endpoint();   // "tcp://127.0.0.1:43210", registered with the bootstrap server
//
// Decode side:
//   FERRY_ASSIGN_OR_RETURN(KvPullReply r, SendPullRequest(endpoint, req, deadline));
//
// A malformed message is answered with an ERROR reply and the server keeps serving.
// SendPullRequest notices a peer that dies (its connection drops) within a moment, and one
// that never answers at the deadline.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/deadline.h"
#include "connector/side_channel_messages.h"
#include "ferry/status.h"

namespace ferry::connector {

class SideChannelServer {
 public:
  // One request, answered exactly once by Reply() from any thread. Dropping a Call
  // without replying answers ERROR "request dropped".
  class Call {
   public:
    Call(std::shared_ptr<void> impl, KvPullRequest request);
    Call(Call&&) = default;
    Call& operator=(Call&&) = default;
    ~Call();
    const KvPullRequest& request() const { return request_; }
    void Reply(const KvPullReply& reply);

   private:
    std::shared_ptr<void> impl_;  // the reply route; null once replied
    KvPullRequest request_;
  };
  using Handler = std::function<void(Call call)>;

  // Binds tcp://host:port (port 0: any free port) and serves on a thread it owns.
  // Errors: AlreadyExists (port taken), InvalidArgument (bad host).
  static Result<std::unique_ptr<SideChannelServer>> Create(const std::string& host, uint16_t port,
                                                           Handler handler);
  virtual ~SideChannelServer() = default;  // stops and joins; late replies are dropped

  // "tcp://host:port" as bound.
  virtual std::string endpoint() const = 0;
  // Requests received, malformed ones included.
  virtual uint64_t requests_received() const = 0;
  virtual uint64_t malformed_received() const = 0;
};

// Sends one request to a prefill worker and waits for its reply. Errors: Unavailable
// (cannot connect, or the peer went away), DeadlineExceeded, InvalidArgument (malformed
// reply).
Result<KvPullReply> SendPullRequest(const std::string& endpoint, const KvPullRequest& request,
                                    Deadline deadline);

}  // namespace ferry::connector
