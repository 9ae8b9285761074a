#include "transfer/tcp/tcp_connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "common/log.h"
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

void TcpOp::WaitSendDone() const {
  if (!send_started_.load(std::memory_order_relaxed)) return;
  // Normally already done (the peer cannot answer a frame it has not received); otherwise
  // the sender is leaving its send call, or failing it on a shut-down socket. Bounded by the
  // op's deadline, which the send itself honours.
  for (int spins = 0; !send_done_.load(std::memory_order_acquire); ++spins) {
    if (spins < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

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
  op->WaitSendDone();
  op->Complete(s);
}

void TcpConnection::Submit(std::shared_ptr<TcpOp> op) {
  if (IsData(*op)) outstanding_.fetch_add(op->length, std::memory_order_relaxed);
  std::unique_lock<std::mutex> lock(mu_);
  if (broken_.load()) {
    lock.unlock();
    Finish(op, UnavailableError("connection to " + peer_ + " is closed"));
    return;
  }
  bool small = op->type != FrameType::kWrite || op->length <= kInlineSendMax;
  if (small && to_send_.empty() && send_mu_.try_lock()) {
    const uint64_t id = StartSendLocked(op);
    lock.unlock();
    Status s = SendOp(*op, id);
    send_mu_.unlock();
    if (!s.ok()) Break(s);
    return;
  }
  to_send_.push_back(std::move(op));
  lock.unlock();
  send_cv_.notify_one();
}

void TcpConnection::Break(const Status& why) {
  std::deque<std::shared_ptr<TcpOp>> queued;
  std::deque<std::pair<uint64_t, std::shared_ptr<TcpOp>>> sent;
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  send_cv_.notify_all();
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
  for (auto& [id, op] : sent) Finish(op, status_for(*op));
  for (auto& op : queued) Finish(op, status_for(*op));
}

uint64_t TcpConnection::StartSendLocked(const std::shared_ptr<TcpOp>& op) {
  const uint64_t id = next_id_++;
  op->MarkSendStarted();
  in_flight_.emplace_back(id, op);
  return id;
}

Status TcpConnection::SendOp(TcpOp& op, uint64_t id) {
  FrameHeader h;
  h.type = op.type;
  h.request_id = id;
  h.remote_addr = op.remote;
  h.aux = op.aux;
  char buf[kFrameHeaderSize];
  iovec iov[2] = {{buf, sizeof(buf)}, {nullptr, 0}};
  switch (op.type) {
    case FrameType::kWrite:
      h.length = op.length;
      iov[1] = {op.local, op.length};
      break;
    case FrameType::kRead:
      h.length = op.length;
      break;
    default:
      h.length = op.payload.size();
      iov[1] = {op.payload.data(), op.payload.size()};
      break;
  }
  EncodeFrameHeader(h, buf);
  Status s = SendAllV(fd_.get(), iov, 2, op.deadline);
  op.MarkSendDone();
  return s;
}

void TcpConnection::SenderLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      send_cv_.wait(lock, [&] { return stopping_.load() || broken_.load() || !to_send_.empty(); });
      if (stopping_.load() || broken_.load()) return;
    }
    std::lock_guard<std::mutex> send_lock(send_mu_);
    std::shared_ptr<TcpOp> op;
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (broken_.load() || to_send_.empty()) continue;
      op = std::move(to_send_.front());
      to_send_.pop_front();
      id = StartSendLocked(op);
    }
    if (Status s = SendOp(*op, id); !s.ok()) Break(s);
  }
}

Deadline TcpConnection::SweepDeadlines() {
  Deadline earliest = Deadline::In(kSweepInterval);
  bool expired = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, op] : in_flight_) {
      earliest = Deadline::Min(earliest, op->deadline);
      expired |= op->deadline.Expired();
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
  Deadline next_sweep = Deadline::In(kSweepInterval);
  char buf[kFrameHeaderSize];
  while (!stopping_.load() && !broken_.load()) {
    if (next_sweep.Expired()) {
      SweepDeadlines();
      next_sweep = Deadline::In(kSweepInterval);
      if (broken_.load()) break;
    }
    // Blocks up to SO_RCVTIMEO (kBlockingTimeoutMs) so deadlines keep being swept.
    ssize_t got = ::recv(fd_.get(), buf, sizeof(buf), MSG_WAITALL);
    if (got > 0) NoteWireRecv();
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (got <= 0) {
      Break(UnavailableError("connection to " + peer_ + " closed by peer (peer gone?)"));
      break;
    }
    if (Status s = ReceiveReply(buf, static_cast<size_t>(got)); !s.ok()) {
      Break(s);
      break;
    }
  }
}

Status TcpConnection::ReceiveReply(char* buf, size_t got) {
  std::shared_ptr<TcpOp> op;
  if (got < kFrameHeaderSize) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!in_flight_.empty()) op = in_flight_.front().second;
    }
    Deadline d = op ? op->deadline : Deadline::In(std::chrono::seconds(60));
    FERRY_RETURN_IF_ERROR(RecvAll(fd_.get(), buf + got, kFrameHeaderSize - got, d));
  }
  Result<FrameHeader> parsed = DecodeFrameHeader(buf);
  if (!parsed.ok()) {
    return UnavailableError("protocol error from " + peer_ + ": " + parsed.status().message());
  }
  const FrameHeader& h = *parsed;
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (h.type != FrameType::kReply || in_flight_.empty()) {
      return UnavailableError("protocol error from " + peer_ + ": unexpected frame");
    }
    id = in_flight_.front().first;
    op = std::move(in_flight_.front().second);
    in_flight_.pop_front();
  }
  // From here this thread owns `op`: it alone may complete it.
  Status s;
  if (h.request_id != id) {
    s = UnavailableError("protocol error from " + peer_ + ": reply out of order");
  } else if (h.status != 0) {
    std::string text;
    s = ReadReplyText(fd_.get(), h, op->deadline, &text);
    if (s.ok()) {
      Finish(op, Status(static_cast<StatusCode>(h.status), "peer " + peer_ + ": " + text));
      return OkStatus();
    }
  } else if (op->type == FrameType::kRead) {
    if (h.length != op->length) {
      s = UnavailableError("protocol error from " + peer_ + ": READ reply of wrong length");
    } else {
      s = RecvAll(fd_.get(), op->local, op->length, op->deadline);
    }
  } else if (h.length > 0) {
    s = ReadReplyText(fd_.get(), h, op->deadline, &op->reply);
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
