// TcpConnection: one persistent, pipelined initiator connection to a peer's RPC port.
//
// Operations (WRITE / READ slices, GET_DESCRIPTOR, NOTIFY) are queued and sent in order by
// a sender thread, or inline on the caller's thread when the connection is idle and the
// operation is small (saves a thread hop on small requests). A receiver thread reads the
// replies, which come back in the same order, and completes each operation. Several
// operations are in flight at once.
//
// Failure: EOF or a reset fails every queued and in-flight operation with Unavailable and
// marks the connection broken (the pool then replaces it). The receiver also acts as the
// deadline sweeper: it wakes at the earliest deadline even when the socket is silent;
// an expired operation breaks the connection (its bytes may be half-sent), failing it with
// DeadlineExceeded and the others on the connection with Unavailable.
//
//   FERRY_ASSIGN_OR_RETURN(auto c, TcpConnection::Connect("127.0.0.1", 17000, "", d));
//   c->Submit(op);   // op->done runs once, on some thread, by op->deadline
//
// Thread safety: Submit / Break / broken / outstanding may be called from any thread.
// Destruction fails what is pending with Aborted and joins both threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/tcp/wire.h"

namespace ferry::transfer::tcp {

// One request on the wire and its completion. Shared by the caller and the connection.
struct TcpOp {
  FrameType type = FrameType::kWrite;
  char* local = nullptr;  // WRITE source / READ destination (caller's memory).
  uint64_t remote = 0;
  uint64_t length = 0;  // WRITE/READ bytes.
  std::string payload;  // Control payload (NOTIFY), sent as is.
  uint32_t aux = 0;
  std::string reply;  // GET_DESCRIPTOR: the reply payload, filled before done().
  Deadline deadline = Deadline::Infinite();
  std::function<void(const Status&)> done;

  // Runs done() the first time only; later calls are ignored.
  void Complete(const Status& s) {
    if (!fired_.exchange(true)) {
      auto d = std::move(done);
      if (d) d(s);
    }
  }

  // The connection's sending thread calls MarkSendDone once it will not touch `local` or
  // `payload` again (the frame went out, or sending it failed). Completion waits for that
  // (WaitSendDone): a peer may answer before the sending call has returned, and the caller
  // may free its buffer as soon as the op completes. Only ops whose send started wait.
  void MarkSendStarted() { send_started_.store(true, std::memory_order_relaxed); }
  void MarkSendDone() { send_done_.store(true, std::memory_order_release); }
  void WaitSendDone() const;

 private:
  std::atomic<bool> fired_{false};
  std::atomic<bool> send_started_{false};
  std::atomic<bool> send_done_{false};
};

// Connects and runs the HELLO challenge-response under `secret` (wire.h): the server must
// prove it knows the secret before this side proves it; the secret itself is never sent.
// Returns a blocking socket (see net.h). Errors as TcpConnection::Connect.
Result<UniqueFd> DialAndGreet(const std::string& host, uint16_t port, const std::string& secret,
                              Deadline deadline);

class TcpConnection {
 public:
  // Connects and runs the HELLO exchange (DialAndGreet). Errors: Unavailable (refused /
  // reset / closed by a server at its connection limit), DeadlineExceeded,
  // PermissionDenied (the secrets differ on the two sides).
  static Result<std::unique_ptr<TcpConnection>> Connect(const std::string& host, uint16_t port,
                                                        const std::string& secret,
                                                        Deadline deadline);
  ~TcpConnection();

  // Queues `op` (or sends it inline). If the connection is broken, op fails at once.
  void Submit(std::shared_ptr<TcpOp> op);
  // Fails everything pending with `why` and closes the socket. Idempotent.
  void Break(const Status& why);
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  // Bytes of WRITE/READ operations accepted and not yet completed (for load balancing).
  uint64_t outstanding() const { return outstanding_.load(std::memory_order_relaxed); }

 private:
  explicit TcpConnection(UniqueFd fd, std::string peer);
  void SenderLoop();
  void ReceiverLoop();
  // Gives `op` the next id and puts it in flight, marked as being sent. REQUIRES(mu_).
  uint64_t StartSendLocked(const std::shared_ptr<TcpOp>& op);
  // Sends op's frame, then marks it send-done (whether or not the send succeeded).
  Status SendOp(TcpOp& op, uint64_t id);
  // Receives the rest of one reply (the first `got` header bytes are in `buf`, which has
  // room for a whole header) and completes the op at the head of in_flight_.
  Status ReceiveReply(char* buf, size_t got);
  void Finish(const std::shared_ptr<TcpOp>& op, const Status& s);
  // Breaks the connection if any op's deadline passed; returns the earliest deadline.
  Deadline SweepDeadlines();

  const UniqueFd fd_;
  const std::string peer_;  // "host:port", for messages
  std::atomic<bool> broken_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> outstanding_{0};
  uint64_t next_id_ = 1;  // GUARDED_BY(mu_)

  std::mutex send_mu_;  // Held while bytes go onto the socket; taken before mu_.
  mutable std::mutex mu_;
  std::condition_variable send_cv_;             // to_send_ became non-empty, or stop
  std::deque<std::shared_ptr<TcpOp>> to_send_;  // GUARDED_BY(mu_)
  std::deque<std::pair<uint64_t, std::shared_ptr<TcpOp>>> in_flight_;  // GUARDED_BY(mu_)

  std::thread sender_;
  std::thread receiver_;
};

}  // namespace ferry::transfer::tcp
