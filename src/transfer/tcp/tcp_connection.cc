#include "transfer/tcp/tcp_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "common/log.h"
#include "common/mutex.h"
#include "transfer/tcp/net.h"

namespace ferry::transfer::tcp {
namespace {

// WRITEs up to this size are sent on the submitting thread when the connection is idle.
constexpr uint64_t kInlineSendMax = 256u << 10;
// The receiver re-checks deadlines at least this often.
constexpr auto kSweepInterval = std::chrono::milliseconds(20);

bool IsData(const TcpOp& op) { return op.type == FrameType::kWrite || op.type == FrameType::kRead; }

Status ReadReplyText(int fd, const FrameHeader& h, Deadline d, std::string* out) {
  if (h.length > kMaxControlPayload) return UnavailableError("reply text too long");
  out->assign(h.length, '\0');
  return RecvAll(fd, out->data(), out->size(), d);
}

}  // namespace

namespace {

Status SendHelloFrame(int fd, FrameType type, const std::string& payload, int32_t status,
                      Deadline deadline) {
  FrameHeader h;
  h.type = type;
  h.length = payload.size();
  h.status = status;
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  iovec iov[2] = {{buf, sizeof(buf)}, {const_cast<char*>(payload.data()), payload.size()}};
  return SendAllV(fd, iov, 2, deadline);
}

// Receives one REPLY to a HELLO frame: OK with its payload in *payload, or the server's
// refusal as a Status.
Status ReceiveHelloReply(int fd, const std::string& peer, Deadline deadline, std::string* payload) {
  char buf[kFrameHeaderSize];
  if (Status s = RecvAll(fd, buf, sizeof(buf), deadline); !s.ok()) {
    if (s.code() != StatusCode::kUnavailable) return s;
    return UnavailableError(peer +
                            " closed the connection during HELLO (is it at its "
                            "connection limit, or a ferry speaking another wire version?)");
  }
  Result<FrameHeader> r = DecodeFrameHeader(buf);
  if (!r.ok()) return UnavailableError(peer + " answered HELLO oddly: " + r.status().message());
  if (r->type != FrameType::kReply) return UnavailableError(peer + " answered HELLO oddly");
  if (r->status != 0) {
    std::string text;
    ReadReplyText(fd, *r, deadline, &text).IgnoreError();
    return Status(static_cast<StatusCode>(r->status), peer + ": " + text);
  }
  if (r->length > kHelloNonceBytes + kHelloProofBytes) {
    return UnavailableError(peer + " answered HELLO with an oversized payload");
  }
  payload->assign(r->length, '\0');
  return RecvAll(fd, payload->data(), payload->size(), deadline);
}

}  // namespace

Result<UniqueFd> DialAndGreet(const std::string& host, uint16_t port, const std::string& secret,
                              Deadline deadline) {
  std::string peer = host + ":" + std::to_string(port);
  FERRY_ASSIGN_OR_RETURN(UniqueFd fd, ConnectTcp(host, port, deadline));
  const std::string client_nonce = crypto::RandomBytes(kHelloNonceBytes);
  FERRY_RETURN_IF_ERROR(SendHelloFrame(fd.get(), FrameType::kHello, client_nonce, 0, deadline)
                            .WithContext("HELLO to " + peer));
  std::string challenge;
  FERRY_RETURN_IF_ERROR(ReceiveHelloReply(fd.get(), peer, deadline, &challenge));
  if (challenge.size() != kHelloNonceBytes + kHelloProofBytes) {
    return UnavailableError(peer + " answered HELLO without a challenge (wire version 1?)");
  }
  const std::string server_nonce = challenge.substr(0, kHelloNonceBytes);
  if (!crypto::ConstantTimeEqual(challenge.substr(kHelloNonceBytes),
                                 HelloServerProof(secret, client_nonce, server_nonce))) {
    // Say so without proving anything: the peer may be an impostor collecting proofs.
    SendHelloFrame(fd.get(), FrameType::kHelloProof, "",
                   static_cast<int32_t>(StatusCode::kPermissionDenied), deadline)
        .IgnoreError();
    // A real engine counts the refusal and hangs up; waiting (briefly) for that makes the
    // refusal visible in its counters by the time this returns.
    WaitReadable(fd.get(), Deadline::Min(deadline, Deadline::In(std::chrono::seconds(1))));
    return PermissionDeniedError(
        peer +
        " could not prove it knows our shared secret: the secrets differ (or it is not "
        "the engine you meant); set the same secret (FERRY_KV_SECRET) on both sides");
  }
  FERRY_RETURN_IF_ERROR(SendHelloFrame(fd.get(), FrameType::kHelloProof,
                                       HelloClientProof(secret, server_nonce, client_nonce), 0,
                                       deadline)
                            .WithContext("HELLO_PROOF to " + peer));
  std::string ignored;
  FERRY_RETURN_IF_ERROR(ReceiveHelloReply(fd.get(), peer, deadline, &ignored));
  return fd;
}

Result<std::unique_ptr<TcpConnection>> TcpConnection::Connect(const std::string& host,
                                                              uint16_t port,
                                                              const std::string& secret,
                                                              Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(UniqueFd fd, DialAndGreet(host, port, secret, deadline));
  std::unique_ptr<TcpConnection> c(
      new TcpConnection(std::move(fd), host + ":" + std::to_string(port)));
  c->sender_ = std::thread([p = c.get()] { p->SenderLoop(); });
  c->receiver_ = std::thread([p = c.get()] { p->ReceiverLoop(); });
  return c;
}

TcpConnection::TcpConnection(UniqueFd fd, std::string peer)
    : fd_(std::move(fd)), peer_(std::move(peer)) {}

TcpConnection::~TcpConnection() {
  stopping_.store(true);
  Break(AbortedError("transfer engine shut down while the request was in flight"));
  for (std::thread* t : {&sender_, &receiver_}) {
    if (!t->joinable()) continue;
    if (t->get_id() == std::this_thread::get_id()) {
      FERRY_LOG_ERROR("tcp connection destroyed on its own thread; detaching");
      t->detach();
    } else {
      t->join();
    }
  }
}

void TcpConnection::Finish(const std::shared_ptr<TcpOp>& op, const Status& s) {
  if (IsData(*op)) outstanding_.fetch_sub(op->length, std::memory_order_relaxed);
  op->result_ = s;
  if (op->EndPart()) op->Complete(op->result_);
}

void TcpConnection::EndSend(TcpOp& op) {
  if (op.EndPart()) op.Complete(op.result_);
}

void TcpConnection::Submit(std::span<const std::shared_ptr<TcpOp>> ops) {
  if (ops.empty()) return;
  uint64_t data = 0, inline_bytes = 0;
  bool small = true;
  for (const auto& op : ops) {
    if (IsData(*op)) data += op->length;
    if (op->type == FrameType::kWrite) inline_bytes += op->length;
    small &= op->type != FrameType::kWrite || op->length <= kInlineSendMax;
  }
  outstanding_.fetch_add(data, std::memory_order_relaxed);
  MutexLock lock(&mu_);
  if (broken_.load()) {
    lock.Unlock();
    for (const auto& op : ops)
      Finish(op, UnavailableError("connection to " + peer_ + " is closed"));
    return;
  }
  const bool was_idle = to_send_.empty();
  to_send_.insert(to_send_.end(), ops.begin(), ops.end());
  if (small && inline_bytes <= kInlineSendMax && was_idle && send_mu_.TryLock()) {
    // Idle and small: send on this thread, sparing the sender thread's wake-up.
    std::vector<Sending> batch;
    const bool wake = TakeBatchLocked(&batch);
    const bool more = !to_send_.empty();
    lock.Unlock();
    if (wake) recv_cv_.Signal();
    Status s = SendBatch(batch);
    send_mu_.Unlock();
    if (!s.ok()) Break(s);
    if (more) send_cv_.Signal();
    return;
  }
  lock.Unlock();
  send_cv_.Signal();
}

void TcpConnection::Break(const Status& why) {
  std::deque<std::shared_ptr<TcpOp>> queued;
  std::deque<Sending> sent;
  {
    MutexLock lock(&mu_);
    if (!broken_.load()) {
      broken_.store(true, std::memory_order_release);
      if (!stopping_.load() && why.code() != StatusCode::kDeadlineExceeded) {
        FERRY_LOG_DEBUG("tcp connection to {} closed: {}", peer_, why.ToString());
      }
    }
    queued.swap(to_send_);
    sent.swap(in_flight_);
  }
  ::shutdown(fd_.get(), SHUT_RDWR);
  send_cv_.SignalAll();
  recv_cv_.SignalAll();
  auto status_for = [&](const TcpOp& op) {
    if (why.code() == StatusCode::kAborted) return why;
    if (op.deadline.Expired()) {
      return DeadlineExceededError("request to " + peer_ + " did not finish by its deadline");
    }
    if (why.code() == StatusCode::kDeadlineExceeded) {
      return UnavailableError("connection to " + peer_ +
                              " closed after another request on it timed out; retry");
    }
    return why;
  };
  for (auto& in : sent) Finish(in.op, status_for(*in.op));
  for (auto& op : queued) Finish(op, status_for(*op));
}

bool TcpConnection::TakeBatchLocked(std::vector<Sending>* batch) {
  const bool wake = in_flight_.empty() && receiver_idle_;
  uint64_t bytes = 0;
  while (!to_send_.empty() && batch->size() < kMaxBatchOps &&
         (batch->empty() || bytes < kMaxBatchBytes)) {
    std::shared_ptr<TcpOp> op = std::move(to_send_.front());
    to_send_.pop_front();
    if (op->type == FrameType::kWrite) bytes += op->length;
    op->parts_.store(2, std::memory_order_relaxed);  // published to the receiver by mu_
    Sending s{next_id_++, std::move(op)};
    in_flight_.push_back(s);
    batch->push_back(std::move(s));
  }
  return wake && !batch->empty() && !caller_reads_;
}

Status TcpConnection::SendBatch(std::span<Sending> batch) {
  char headers[kMaxBatchOps][kFrameHeaderSize];
  iovec iov[2 * kMaxBatchOps];
  const size_t count = std::min(batch.size(), kMaxBatchOps);
  Deadline deadline = Deadline::Infinite();
  for (size_t i = 0; i < count; ++i) {
    TcpOp& op = *batch[i].op;
    FrameHeader h;
    h.type = op.type;
    h.request_id = batch[i].id;
    h.remote_addr = op.remote;
    h.aux = op.aux;
    iov[2 * i + 1] = {nullptr, 0};
    switch (op.type) {
      case FrameType::kWrite:
        h.length = op.length;
        iov[2 * i + 1] = {op.local, op.length};
        break;
      case FrameType::kRead:
        h.length = op.length;
        break;
      default:
        h.length = op.payload.size();
        iov[2 * i + 1] = {op.payload.data(), op.payload.size()};
        break;
    }
    EncodeFrameHeader(h, headers[i]);
    iov[2 * i] = {headers[i], kFrameHeaderSize};
    deadline = Deadline::Min(deadline, op.deadline);
  }
  // iov[first..] is what is left to send; op i is out once iov[2i+1] is.
  const size_t total = 2 * count;
  size_t first = 0, ended = 0;
  auto end_sent = [&] {
    for (; ended < count && first >= 2 * ended + 2; ++ended) EndSend(*batch[ended].op);
  };
  Status s;
  NoteWireSend();
  while (true) {
    while (first < total && iov[first].iov_len == 0) ++first;
    end_sent();
    if (first == total) break;
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = total - first;
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // SO_SNDTIMEO: re-check the deadline
        if (!deadline.Expired() && !broken()) continue;
        s = broken() ? UnavailableError("connection to " + peer_ + " closed")
                     : DeadlineExceededError("send to " + peer_ + " timed out");
        break;
      }
      s = UnavailableError("send to " + peer_ + ": " + std::strerror(errno) +
                           " (peer gone or connection closed)");
      break;
    }
    for (size_t left = static_cast<size_t>(n); left > 0;) {
      const size_t take = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + take;
      iov[first].iov_len -= take;
      left -= take;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  NoteWireSend();  // after the kernel read the buffers
  // Failed: the rest will not be sent (Break fails them); their buffers are free again.
  for (; ended < count; ++ended) EndSend(*batch[ended].op);
  return s;
}

void TcpConnection::SenderLoop() {
  std::vector<Sending> batch;
  batch.reserve(kMaxBatchOps);
  while (true) {
    {
      MutexLock lock(&mu_);
      send_cv_.Wait(&mu_, [&]() FERRY_REQUIRES(mu_) {
        return stopping_.load() || broken_.load() || !to_send_.empty();
      });
      if (stopping_.load() || broken_.load()) return;
    }
    MutexLock send_lock(&send_mu_);
    batch.clear();
    bool wake = false;
    {
      MutexLock lock(&mu_);
      if (broken_.load()) continue;
      wake = TakeBatchLocked(&batch);
    }
    if (wake) recv_cv_.Signal();
    if (batch.empty()) continue;
    Status s = SendBatch(batch);
    batch.clear();  // drop the references before possibly waiting again
    if (!s.ok()) Break(s);
  }
}

Deadline TcpConnection::SweepDeadlines() {
  Deadline earliest = Deadline::In(kSweepInterval);
  bool expired = false;
  {
    MutexLock lock(&mu_);
    for (auto& in : in_flight_) {
      earliest = Deadline::Min(earliest, in.op->deadline);
      expired |= in.op->deadline.Expired();
    }
    for (auto& op : to_send_) {
      earliest = Deadline::Min(earliest, op->deadline);
      expired |= op->deadline.Expired();
    }
  }
  if (expired) Break(DeadlineExceededError("request to " + peer_ + " timed out"));
  return earliest;
}

void TcpConnection::ReceiverLoop() {
  rbuf_.reset(new char[kRecvBufferBytes]);
  Deadline next_sweep = Deadline::In(kSweepInterval);
  while (!stopping_.load() && !broken_.load()) {
    if (next_sweep.Expired()) {
      SweepDeadlines();
      next_sweep = Deadline::In(kSweepInterval);
      if (broken_.load()) break;
    }
    {
      MutexLock lock(&mu_);
      auto work = [&]() FERRY_REQUIRES(mu_) { return !in_flight_.empty() && !caller_reads_; };
      if (!work()) {
        receiver_idle_ = true;
        recv_cv_.WaitUntil(&mu_, next_sweep.when(), [&]() FERRY_REQUIRES(mu_) {
          return stopping_.load() || broken_.load() || work();
        });
        receiver_idle_ = false;
        if (stopping_.load() || broken_.load()) break;
        if (!work()) {
          if (in_flight_.empty() && !caller_reads_ && PeerHungUpLocked()) {
            lock.Unlock();
            Break(UnavailableError("connection to " + peer_ + " closed by peer (peer gone?)"));
            break;
          }
          continue;
        }
      }
    }
    if (Status s = ReceiveReplies(); !s.ok()) {
      Break(s);
      break;
    }
  }
}

bool TcpConnection::PeerHungUpLocked() {
  char c;
  ssize_t n = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true;  // EOF, or bytes nobody asked for
}

bool TcpConnection::TryRunInline(const std::shared_ptr<TcpOp>& op) {
  MutexLock lock(&mu_);
  // With nothing in flight the receiver thread does not touch the socket (it reads only
  // while replies are due), so this thread may read the reply itself.
  if (broken_.load() || !in_flight_.empty() || !to_send_.empty() || caller_reads_) {
    return false;
  }
  if (PeerHungUpLocked()) {  // e.g. closed as idle, or the peer restarted: not this one
    lock.Unlock();
    Break(UnavailableError("connection to " + peer_ + " closed by peer (peer gone?)"));
    return false;
  }
  if (!send_mu_.TryLock()) return false;
  caller_reads_ = true;
  const uint64_t id = next_id_++;
  lock.Unlock();
  const uint64_t data = IsData(*op) ? op->length : 0;
  outstanding_.fetch_add(data, std::memory_order_relaxed);
  bool in_sync = false;
  Status s = ExchangeInline(*op, id, &in_sync);
  lock.Lock();
  caller_reads_ = false;
  const bool wake = !in_flight_.empty();
  lock.Unlock();
  if (wake) recv_cv_.Signal();
  if (!in_sync) Break(s);
  outstanding_.fetch_sub(data, std::memory_order_relaxed);
  if (!s.ok() && !in_sync && op->deadline.Expired()) {
    s = DeadlineExceededError("request to " + peer_ + " did not finish by its deadline");
  }
  op->Complete(s);
  return true;
}

Status TcpConnection::ExchangeInline(TcpOp& op, uint64_t id, bool* in_sync) {
  // send_mu_ is held (TryRunInline took it): the frame goes out alone, then frees the
  // socket for the sender, whose frames' replies queue behind ours.
  FrameHeader h;
  h.type = op.type;
  h.request_id = id;
  h.remote_addr = op.remote;
  h.aux = op.aux;
  h.length =
      op.type == FrameType::kWrite || op.type == FrameType::kRead ? op.length : op.payload.size();
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  iovec iov[2] = {{buf, sizeof(buf)}, {nullptr, 0}};
  if (op.type == FrameType::kWrite) iov[1] = {op.local, op.length};
  if (op.type != FrameType::kWrite && op.type != FrameType::kRead) {
    iov[1] = {op.payload.data(), op.payload.size()};
  }
  Status sent = SendAllV(fd_.get(), iov, 2, op.deadline);
  send_mu_.Unlock();
  FERRY_RETURN_IF_ERROR(sent);
  FERRY_RETURN_IF_ERROR(RecvAll(fd_.get(), buf, sizeof(buf), op.deadline));
  Result<FrameHeader> r = DecodeFrameHeader(buf);
  if (!r.ok())
    return UnavailableError("protocol error from " + peer_ + ": " + r.status().message());
  if (r->type != FrameType::kReply || r->request_id != id) {
    return UnavailableError("protocol error from " + peer_ + ": unexpected reply");
  }
  if (r->status != 0 || (op.type != FrameType::kRead && r->length > 0)) {
    if (r->length > kMaxControlPayload) return UnavailableError("reply text too long");
    std::string text(r->length, '\0');
    FERRY_RETURN_IF_ERROR(RecvAll(fd_.get(), text.data(), text.size(), op.deadline));
    *in_sync = true;
    if (r->status == 0) {
      op.reply = std::move(text);
      return OkStatus();
    }
    return Status(static_cast<StatusCode>(r->status), "peer " + peer_ + ": " + text);
  }
  if (op.type == FrameType::kRead) {
    if (r->length != op.length) {
      return UnavailableError("protocol error from " + peer_ + ": READ reply of wrong length");
    }
    FERRY_RETURN_IF_ERROR(RecvAll(fd_.get(), op.local, op.length, op.deadline));
  }
  *in_sync = true;
  return OkStatus();
}

Status TcpConnection::ReceiveReplies() {
  // Keep the partial header (if any) at the front and fill the rest of the buffer. When
  // the next reply is a READ's, take only its header: its data goes straight to the caller.
  if (rbegin_ > 0) {
    std::memmove(rbuf_.get(), rbuf_.get() + rbegin_, rend_ - rbegin_);
    rend_ -= rbegin_;
    rbegin_ = 0;
  }
  size_t want = kRecvBufferBytes - rend_;
  {
    MutexLock lock(&mu_);
    if (!in_flight_.empty() && in_flight_.front().op->type == FrameType::kRead) {
      want = kFrameHeaderSize - rend_;
    }
  }
  // Blocks up to SO_RCVTIMEO (kBlockingTimeoutMs) so deadlines keep being swept.
  ssize_t got = ::recv(fd_.get(), rbuf_.get() + rend_, want, 0);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return OkStatus();
  if (got <= 0) return UnavailableError("connection to " + peer_ + " closed by peer (peer gone?)");
  NoteWireRecv();
  rend_ += static_cast<size_t>(got);
  while (rend_ - rbegin_ >= kFrameHeaderSize) {
    Result<FrameHeader> parsed = DecodeFrameHeader(rbuf_.get() + rbegin_);
    if (!parsed.ok()) {
      return UnavailableError("protocol error from " + peer_ + ": " + parsed.status().message());
    }
    rbegin_ += kFrameHeaderSize;
    FERRY_RETURN_IF_ERROR(CompleteReply(*parsed));
  }
  return OkStatus();
}

Status TcpConnection::TakeBody(char* dst, uint64_t len, Deadline d) {
  const uint64_t have = std::min<uint64_t>(len, rend_ - rbegin_);
  if (have > 0) std::memcpy(dst, rbuf_.get() + rbegin_, have);
  rbegin_ += have;
  if (have == len) return OkStatus();
  return RecvAll(fd_.get(), dst + have, len - have, d);
}

Status TcpConnection::CompleteReply(const FrameHeader& h) {
  Sending in;
  {
    MutexLock lock(&mu_);
    if (h.type != FrameType::kReply || in_flight_.empty()) {
      return UnavailableError("protocol error from " + peer_ + ": unexpected frame");
    }
    in = std::move(in_flight_.front());
    in_flight_.pop_front();
  }
  // From here this thread owns the op's reply part: it alone may Finish it.
  const std::shared_ptr<TcpOp>& op = in.op;
  Status s;
  if (h.request_id != in.id) {
    s = UnavailableError("protocol error from " + peer_ + ": reply out of order");
  } else if (h.status != 0) {
    std::string text;
    if (h.length > kMaxControlPayload) {
      s = UnavailableError("reply text too long");
    } else {
      text.resize(h.length);
      s = TakeBody(text.data(), text.size(), op->deadline);
    }
    if (s.ok()) {
      Finish(op, Status(static_cast<StatusCode>(h.status), "peer " + peer_ + ": " + text));
      return OkStatus();
    }
  } else if (op->type == FrameType::kRead) {
    if (h.length != op->length) {
      s = UnavailableError("protocol error from " + peer_ + ": READ reply of wrong length");
    } else {
      s = TakeBody(op->local, op->length, op->deadline);
    }
  } else if (h.length > 0) {
    if (h.length > kMaxControlPayload) {
      s = UnavailableError("reply text too long");
    } else {
      op->reply.resize(h.length);
      s = TakeBody(op->reply.data(), op->reply.size(), op->deadline);
    }
  }
  if (s.ok()) {
    Finish(op, OkStatus());
    return OkStatus();
  }
  if (op->deadline.Expired()) {
    s = DeadlineExceededError("request to " + peer_ + " did not finish by its deadline");
  }
  Finish(op, s);
  return s;
}

}  // namespace ferry::transfer::tcp
