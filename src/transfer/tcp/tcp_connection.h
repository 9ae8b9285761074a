// TcpConnection: one persistent, pipelined initiator connection to a peer's RPC port.
//
// Operations (WRITE / READ slices, GET_DESCRIPTOR, NOTIFY) are queued and sent in order by
// a sender thread, or inline on the caller's thread when the connection is idle and the
// operations are small (saves a thread hop on small requests). Queued frames go out many
// to one sendmsg. A receiver thread reads the replies, which come back in the same order,
// in bulk, and completes each operation. Many operations are in flight at once.
//
// A single synchronous request on an idle connection can instead run entirely on the
// caller's thread (TryRunInline: send, then read its own reply), without thread hops.
//
// Failure: EOF or a reset fails every queued and in-flight operation with Unavailable and
// marks the connection broken (the pool then replaces it); an idle connection notices a
// peer that hung up within 20 ms. The receiver also acts as the deadline sweeper: it wakes
// at least every 20 ms even when the socket is silent; an expired
// operation breaks the connection (its bytes may be half-sent), failing it with
// DeadlineExceeded and the others on the connection with Unavailable.
//
//   FERRY_ASSIGN_OR_RETURN(auto c, TcpConnection::Connect("127.0.0.1", 17000, "", d));
//   c->Submit(op);   // op->done runs once, on some thread, by op->deadline
//   if (!c->TryRunInline(op2)) c->Submit(op2);   // op2->done ran here if it returned true
//
// Thread safety: Submit / Break / broken / outstanding may be called from any thread.
// Destruction fails what is pending with Aborted and joins both threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
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
    if (!fired_.exchange(true, std::memory_order_acq_rel)) {
      auto d = std::move(done);
      if (d) d(s);
    }
  }

 private:
  friend class TcpConnection;
  // An op whose frame went onto the wire ends in two parts: its reply (or failure) and the
  // end of the sending call, which may still read `local` / `payload` when a fast peer has
  // already answered. Whichever part comes second runs Complete, so the caller's buffer is
  // never touched after done() and nobody waits. parts_ is 1 (no send started) or 2.
  // Returns true to the caller that must run Complete(result_).
  bool EndPart() { return parts_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

  std::atomic<bool> fired_{false};
  std::atomic<int> parts_{1};
  Status result_;  // written by the reply side before its EndPart
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

  // Queues `ops` in order (or sends them inline when the connection is idle and they are
  // small). If the connection is broken, they fail at once.
  void Submit(std::span<const std::shared_ptr<TcpOp>> ops);
  void Submit(std::shared_ptr<TcpOp> op) {
    Submit(std::span<const std::shared_ptr<TcpOp>>(&op, 1));
  }
  // If the connection is idle (nothing queued or in flight), runs `op` entirely on this
  // thread: sends its frame, reads its reply from the socket and completes it (done runs
  // here, before this returns true). Spares the two thread hops of Submit for a single
  // synchronous request. Returns false, leaving `op` untouched, when the connection is
  // busy or broken (a peer that hung up on an idle connection is noticed here, and breaks
  // it); the caller then Submits it.
  bool TryRunInline(const std::shared_ptr<TcpOp>& op);
  // Fails everything pending with `why` and closes the socket. Idempotent.
  void Break(const Status& why);
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  // Bytes of WRITE/READ operations accepted and not yet completed (for load balancing).
  uint64_t outstanding() const { return outstanding_.load(std::memory_order_relaxed); }

 private:
  // An op taken off to_send_ together with its request id.
  struct Sending {
    uint64_t id = 0;
    std::shared_ptr<TcpOp> op;
  };
  // Frames sent in one sendmsg at most: ops, and payload bytes (at least one op).
  static constexpr size_t kMaxBatchOps = 64;
  static constexpr uint64_t kMaxBatchBytes = 1u << 20;
  // Reply bytes read per recv at most (replies are read in bulk into this buffer).
  static constexpr size_t kRecvBufferBytes = 16u << 10;

  explicit TcpConnection(UniqueFd fd, std::string peer);
  void SenderLoop();
  void ReceiverLoop();
  // Moves the next batch of to_send_ into flight: gives each op the next id and marks it
  // as being sent (two completion parts). The caller holds mu_, and send_mu_ until the
  // batch went out, so that in_flight_ is in wire order. Returns true if the receiver
  // waits for work and must be woken (recv_cv_, after unlocking).
  bool TakeBatchLocked(std::vector<Sending>* batch) FERRY_REQUIRES(mu_, send_mu_);
  // TryRunInline's exchange: the frame out, the reply in, exactly its bytes.
  // *in_sync tells whether the stream is still usable afterwards.
  // Called with send_mu_ held; releases it once the frame is out.
  Status ExchangeInline(TcpOp& op, uint64_t id, bool* in_sync) FERRY_RELEASE(send_mu_);
  // While idle: whether the peer closed the connection (EOF, reset, stray bytes).
  // Nothing in flight and no inline caller reading.
  bool PeerHungUpLocked() FERRY_REQUIRES(mu_);
  // Sends the batch's frames (one sendmsg for many), ending each op's send part as soon
  // as its last byte is in the socket (whether or not the send succeeded).
  Status SendBatch(std::span<Sending> batch);
  // Reads what the socket holds and completes every reply that is whole; replies in the
  // buffer past the last whole one wait for the next call.
  Status ReceiveReplies();
  // Completes the reply whose header is `h` for the op at the head of in_flight_; its body
  // starts at rbuf_[rbegin_] (partly received, if at all).
  Status CompleteReply(const FrameHeader& h);
  // Takes `len` body bytes: those already in rbuf_, then the rest from the socket.
  Status TakeBody(char* dst, uint64_t len, Deadline d);
  // The reply part of an op: records `s` and completes the op if its send has ended too.
  void Finish(const std::shared_ptr<TcpOp>& op, const Status& s);
  // The send part of an op.
  static void EndSend(TcpOp& op);
  // Breaks the connection if any op's deadline passed; returns the earliest deadline.
  Deadline SweepDeadlines();

  const UniqueFd fd_;
  const std::string peer_;  // "host:port", for messages
  std::atomic<bool> broken_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> outstanding_{0};
  uint64_t next_id_ FERRY_GUARDED_BY(mu_) = 1;

  Mutex send_mu_;  // Held while bytes go onto the socket; taken before mu_.
  mutable Mutex mu_;
  CondVar send_cv_;  // to_send_ became non-empty, or stop
  CondVar recv_cv_;  // the receiver has replies to read, or stop
  std::deque<std::shared_ptr<TcpOp>> to_send_ FERRY_GUARDED_BY(mu_);
  std::deque<Sending> in_flight_ FERRY_GUARDED_BY(mu_);  // in wire order
  // The receiver thread reads the socket only while replies are due and no inline caller
  // reads its own (TryRunInline); otherwise it waits on recv_cv_ (receiver_idle_).
  bool receiver_idle_ FERRY_GUARDED_BY(mu_) = false;
  bool caller_reads_ FERRY_GUARDED_BY(mu_) = false;

  // Receiver thread only: reply bytes received and not yet used, rbuf_[rbegin_, rend_).
  std::unique_ptr<char[]> rbuf_;
  size_t rbegin_ = 0;
  size_t rend_ = 0;

  std::thread sender_;
  std::thread receiver_;
};

}  // namespace ferry::transfer::tcp
