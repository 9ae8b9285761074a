// SideChannelClient: the decode end of the side channel (protocol.md, "Side channel").
// Sends pull requests to prefill workers' ROUTERs and delivers each reply, or the reason
// there is none, to a callback. One thread serves every call in flight, so a peer that is
// paused, dead or slow costs a socket, never a thread, and cannot hold up other calls.
//
//   SideChannelClient::Options opts;  opts.secret = SecretFromEnvironment();
//   FERRY_ASSIGN_OR_RETURN(auto client, SideChannelClient::Create(opts));
//   client->Start(endpoint, request, Deadline::In(30s), [](Result<KvPullReply> r) { ... });
//   FERRY_ASSIGN_OR_RETURN(KvPullReply r, client->Call(endpoint, request, deadline));  // blocking
//
// Each call has its own DEALER socket (with a monitor for its connection's fate), torn down
// when the call ends, in the one order that cannot wedge ZeroMQ's I/O thread (monitor
// stopped, then socket closed, then the monitor's reader).
// A call ends with exactly one callback:
//   the reply (any PullStatus; the caller checks ok_reqs),
//   Unavailable      the peer cannot be reached (3 connect retries), closed the connection,
//                    or stopped answering heartbeats (a paused or dead process: within
//                    about heartbeat_timeout),
//   DeadlineExceeded no reply by the deadline,
//   PermissionDenied a reply without a valid MAC while a secret is set,
//   InvalidArgument  a malformed reply,
//   Aborted          the client is being destroyed.
//
// Thread safety: all methods are thread-safe. Callbacks run on the client's thread and
// must not block or call back into the client's Call(). The destructor ends every call in
// flight with Aborted and joins the thread (within about 100 ms).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "common/deadline.h"
#include "connector/side_channel_messages.h"
#include "ferry/status.h"

namespace ferry::connector {

class SideChannelClient {
 public:
  struct Options {
    // The deployment's shared secret; "" sends unauthenticated requests. Default: "".
    std::string secret;
    // Calls in flight at most; beyond, Start refuses with ResourceExhausted. Default: 4096.
    size_t max_calls = 4096;
    // ZeroMQ heartbeats on each call's connection: a peer silent for heartbeat_timeout is
    // taken as gone. Default: 1 s and 3 s.
    std::chrono::milliseconds heartbeat_interval{1000};
    std::chrono::milliseconds heartbeat_timeout{3000};
  };
  using Done = std::function<void(Result<KvPullReply>)>;

  // Errors: InvalidArgument for bad options; Internal if the thread's wake-up fd fails.
  static Result<std::unique_ptr<SideChannelClient>> Create(const Options& options);
  virtual ~SideChannelClient() = default;

  // Starts one call. On OK, `done` runs exactly once later, on the client's thread.
  // Errors (then `done` is never called): ResourceExhausted (max_calls in flight),
  // Aborted (the client is shutting down).
  virtual Status Start(const std::string& endpoint, const KvPullRequest& request, Deadline deadline,
                       Done done) = 0;
  // Start + wait. Returns what `done` would get, or Start's error.
  Result<KvPullReply> Call(const std::string& endpoint, const KvPullRequest& request,
                           Deadline deadline);
  // Calls in flight.
  virtual size_t in_flight() const = 0;
};

}  // namespace ferry::connector
