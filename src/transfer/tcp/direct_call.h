// Direct calls: one WRITE or READ slice done entirely on the caller's thread over an
// exclusive, thread-less connection (send, then block on the reply with the deadline).
// Used by TransferEngine::TransferSync for a single small request: it saves the thread
// hops of the pipelined path (~6-8 us of a ~23 us 4 KiB round trip on loopback).
//
//   DirectConnectionPool pool(secret, connect_timeout);
//   Status s = pool.Call("127.0.0.1", 17000, FrameType::kWrite, buf, remote, 4096, deadline);
//
// Thread safety: thread-safe; each call uses its own connection, idle ones are pooled.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/tcp/wire.h"

namespace ferry::transfer::tcp {

class DirectConnectionPool {
 public:
  DirectConnectionPool(std::string secret, std::chrono::milliseconds connect_timeout)
      : secret_(std::move(secret)), connect_timeout_(connect_timeout) {}

  // Moves `length` bytes (type kWrite: local -> remote; kRead: remote -> local) and
  // returns once the peer acknowledged. Errors: the peer's refusal (OutOfRange, ...),
  // Unavailable, DeadlineExceeded, PermissionDenied. A stale pooled connection (peer
  // restarted) is retried once on a fresh one; WRITE and READ are idempotent.
  Status Call(const std::string& host, uint16_t port, FrameType type, char* local, uint64_t remote,
              uint64_t length, Deadline deadline);

  // Closes idle connections to "host:port".
  void Forget(const std::string& key);

 private:
  // One exchange on `fd`. *reusable tells whether the stream is still in sync.
  Status Exchange(int fd, const std::string& peer, FrameType type, char* local, uint64_t remote,
                  uint64_t length, Deadline deadline, bool* reusable);

  static constexpr size_t kMaxIdlePerPeer = 4;
  const std::string secret_;
  const std::chrono::milliseconds connect_timeout_;
  std::mutex mu_;
  std::map<std::string, std::vector<UniqueFd>> idle_;  // GUARDED_BY(mu_)
};

}  // namespace ferry::transfer::tcp
