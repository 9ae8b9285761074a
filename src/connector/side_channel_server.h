// SideChannelServer: the prefill end of the side channel between decode and prefill
// workers (protocol.md, "Side channel"): a ZeroMQ ROUTER that receives msgpack pull
// requests (side_channel_messages.h) and routes each reply back to its sender.
//
//   SideChannelServer::Options opts;  opts.secret = SecretFromEnvironment();
//   auto server = SideChannelServer::Create("127.0.0.1", 0, opts,
//       [&](SideChannelServer::Call call) {   // runs on the server thread: hand off, return
//         pool.Post([call = std::move(call)]() mutable { ...; call.Reply(reply); });
//       });
//   (*server)->endpoint();   // "tcp://127.0.0.1:43210", registered with the bootstrap server
//
// Authentication: with a secret, a request is two frames, [msgpack, AuthTag::ToString()]
// (see message_auth.h, channel "side-channel"); one with a missing, forged, stale or
// replayed tag is answered ERROR and never reaches the handler. Replies then carry a
// second frame, the MAC binding the reply to the request's nonce. Without a secret,
// requests and replies are single frames, as with vLLM's connector.
//
// Limits: frames over internal::kMaxSideChannelMessage drop the sender's connection;
// messages are decoded with the bounds of side_channel_messages.h. A malformed message is
// answered with ERROR and the server keeps serving.
//
// Thread safety: endpoint() and the counters may be called from any thread; Call::Reply
// from any thread, also after the server is gone (the reply is then dropped).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "connector/side_channel_messages.h"
#include "ferry/status.h"

namespace ferry::connector {

class SideChannelServer {
 public:
  struct Options {
    // The deployment's shared secret; "" accepts unauthenticated requests. Default: "".
    std::string secret;
  };

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
                                                           const Options& options, Handler handler);
  static Result<std::unique_ptr<SideChannelServer>> Create(const std::string& host, uint16_t port,
                                                           Handler handler) {
    return Create(host, port, Options{}, std::move(handler));
  }
  virtual ~SideChannelServer() = default;  // stops and joins; late replies are dropped

  // "tcp://host:port" as bound.
  virtual std::string endpoint() const = 0;
  // Requests received, malformed and unauthenticated ones included.
  virtual uint64_t requests_received() const = 0;
  virtual uint64_t malformed_received() const = 0;
  // Requests refused for their authentication tag.
  virtual uint64_t unauthenticated_received() const = 0;
};

}  // namespace ferry::connector
