#include "transfer/tcp/server_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/crypto.h"
#include "common/log.h"
#include "transfer/tcp/net.h"

namespace ferry::transfer::tcp {
namespace {

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

void* Address(uint64_t addr) { return reinterpret_cast<void*>(static_cast<uintptr_t>(addr)); }

}  // namespace

ServerConnection::ServerConnection(UniqueFd fd, std::string ip, std::string peer,
                                   ServerContext* context, SteadyClock::time_point now)
    : fd_(std::move(fd)),
      ip_(std::move(ip)),
      peer_(std::move(peer)),
      context_(context),
      accepted_(now),
      now_(now),
      last_frame_end_(now) {}

bool ServerConnection::OnReady(uint32_t events, std::span<char> scratch,
                               SteadyClock::time_point now) {
  now_ = now;
  if (events & (EPOLLERR | EPOLLHUP)) {
    // Reset or fully closed: nothing more can be said to this peer.
    if (in_frame_ && input_ == Input::kHeader) return Refuse("connection reset mid-frame");
    return false;
  }
  if ((events & EPOLLOUT) && !Flush()) return false;
  if (!close_after_flush_ && (events & EPOLLIN) && !ReadSome(scratch)) return false;
  return !(close_after_flush_ && out_.empty());
}

uint32_t ServerConnection::WantedEvents() const {
  uint32_t events = out_.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT);
  bool reply_backlog =
      input_ == Input::kHeader && header_got_ == 0 && out_.size() >= kMaxQueuedReplies;
  if (!close_after_flush_ && !reply_backlog) events |= EPOLLIN;
  return events;
}

bool ServerConnection::Expired(SteadyClock::time_point now, std::string* why) {
  const TcpServerOptions& o = context_->options;
  if (phase_ != Phase::kReady && now - accepted_ >= o.hello_timeout) {
    *why = "HELLO not completed within " + Seconds(o.hello_timeout) + " of connecting";
    Refuse(*why);
    return true;
  }
  if (in_frame_ && now - frame_started_ >= o.frame_timeout) {
    std::string what = input_ == Input::kHeader
                           ? std::string("frame header")
                           : std::string(FrameTypeName(frame_.type)) + " frame";
    *why = what + " not received within " + Seconds(o.frame_timeout) +
           " (tcp_frame_timeout_s): peer stalled or too slow";
    Refuse(*why);
    return true;
  }
  if (!out_.empty() && now - out_started_ >= o.frame_timeout) {
    *why = "reply not taken by the peer within " + Seconds(o.frame_timeout);
    Refuse(*why);
    return true;
  }
  if (phase_ == Phase::kReady && !in_frame_ && out_.empty() &&
      now - last_frame_end_ >= o.idle_timeout) {
    *why = "idle for " + Seconds(o.idle_timeout) + " (tcp_idle_timeout_s)";
    FERRY_LOG_DEBUG("tcp server: closing connection from {}: {}", peer_, *why);
    return true;
  }
  return false;
}

bool ServerConnection::ReadSome(std::span<char> scratch) {
  uint64_t budget = kReadBudget;
  while (true) {
    ssize_t n = 0;
    size_t next_header = 0;  // bytes of the next frame's header received with this payload
    switch (input_) {
      case Input::kHeader:
        if (header_got_ == 0 && out_.size() >= kMaxQueuedReplies) {
          // Hand the peer its replies before reading more; stop if it does not take them.
          if (!Flush()) return false;
          if (out_.size() >= kMaxQueuedReplies) return true;
        }
        n = RecvSome(fd(), header_ + header_got_, kFrameHeaderSize - header_got_);
        break;
      case Input::kToMemory:
        if (left_ <= budget) {
          // The payload's end and the next header in one call (the header lands in
          // header_, the payload still goes straight to the target memory).
          iovec iov[2] = {{dst_, left_}, {header_, kFrameHeaderSize}};
          n = RecvSomeV(fd(), iov, 2);
          if (n > 0 && static_cast<uint64_t>(n) > left_) {
            next_header = static_cast<size_t>(n) - left_;
            n = static_cast<ssize_t>(left_);
          }
        } else {
          n = RecvSome(fd(), dst_, budget);
        }
        break;
      case Input::kToPayload: {
        // Grown as bytes arrive: memory follows what the peer sent, not what it announced.
        uint64_t got = frame_.length - left_;
        if (got == payload_.size()) {
          payload_.resize(std::min<uint64_t>(frame_.length,
                                             std::max<uint64_t>(payload_.size() * 2, 64u << 10)));
        }
        n = RecvSome(fd(), payload_.data() + got, payload_.size() - got);
        break;
      }
      case Input::kDrain:
        n = RecvSome(fd(), scratch.data(), std::min<uint64_t>(left_, scratch.size()));
        break;
    }
    if (n < 0) {
      if (WouldBlock(errno)) return Flush();  // everything read is answered in one go
      FERRY_LOG_DEBUG("tcp server: connection from {} failed: {}", peer_, std::strerror(errno));
      return false;
    }
    if (n == 0) {  // EOF
      if (in_frame_ && input_ == Input::kHeader) return Refuse("truncated frame header");
      if (in_frame_) {
        FERRY_LOG_DEBUG("tcp server: {} payload from {} cut short", FrameTypeName(frame_.type),
                        peer_);
        return false;
      }
      if (phase_ == Phase::kProof) {
        return Refuse("peer hung up after the HELLO challenge (a different secret on its side?)");
      }
      return false;
    }
    const uint64_t got = static_cast<uint64_t>(n);
    if (input_ == Input::kHeader) {
      if (!HeaderBytes(got)) return false;
      if (close_after_flush_) return Flush();
      continue;
    }
    left_ -= got;
    budget -= std::min(got, budget);
    if (input_ == Input::kToMemory) dst_ += got;
    if (left_ == 0) {
      switch (input_) {
        case Input::kToMemory:
          context_->host->CountInbound(TransferOp::kWrite, frame_.length);
          QueueReply(frame_, OkStatus());
          EndFrame();
          break;
        case Input::kToPayload:
          if (!EndControlFrame()) return false;
          break;
        case Input::kDrain:
          QueueReply(frame_, refusal_);
          EndFrame();
          break;
        case Input::kHeader:
          break;
      }
      if (close_after_flush_) return Flush();
      if (next_header > 0) {
        if (!HeaderBytes(next_header)) return false;
        if (close_after_flush_) return Flush();
      }
    }
    if (budget == 0) return Flush();  // level-triggered epoll reports the rest
  }
}

bool ServerConnection::HeaderBytes(uint64_t got) {
  if (header_got_ == 0) {
    in_frame_ = true;
    frame_started_ = now_;
  }
  header_got_ += got;
  if (header_got_ < kFrameHeaderSize) return true;  // the rest has not arrived yet
  header_got_ = 0;
  // A frame without payload is answered with the next batch of replies; a payload
  // usually came with its header, so the loop reads it now rather than after a wake-up.
  return BeginFrame();
}

bool ServerConnection::BeginFrame() {
  Result<FrameHeader> parsed = DecodeFrameHeader(header_);
  if (!parsed.ok()) return Refuse(parsed.status().message());
  frame_ = *parsed;
  const FrameType type = frame_.type;
  const std::string name(FrameTypeName(type));
  if (phase_ == Phase::kHello && type != FrameType::kHello) return Refuse(name + " before HELLO");
  if (phase_ == Phase::kProof && type != FrameType::kHelloProof) {
    return Refuse(name + " before HELLO_PROOF");
  }
  if (phase_ == Phase::kReady && (type == FrameType::kHello || type == FrameType::kHelloProof)) {
    return Refuse(name + " after the handshake");
  }
  TransportHost* host = context_->host;
  switch (type) {
    case FrameType::kHello:
    case FrameType::kHelloProof:
    case FrameType::kNotify:
      left_ = frame_.length;
      payload_.clear();
      if (left_ == 0) return EndControlFrame();
      input_ = Input::kToPayload;
      return true;
    case FrameType::kGetDescriptor:
      QueueReply(frame_, OkStatus(), host->LocalDescriptor().ToJson());
      EndFrame();
      return true;
    case FrameType::kWrite: {
      Status range = host->CheckInboundRange(frame_.remote_addr, frame_.length);
      if (!range.ok()) {
        host->CountRejected();
        FERRY_LOG_DEBUG("tcp server: refused WRITE from {}: {}", peer_, range.ToString());
        if (frame_.length > kMaxDrain) {
          RefuseAfterReply(frame_, range);
          return true;
        }
        refusal_ = std::move(range);
        input_ = Input::kDrain;
      } else {
        // Straight into the registered buffer: no staging copy.
        dst_ = static_cast<char*>(Address(frame_.remote_addr));
        input_ = Input::kToMemory;
      }
      left_ = frame_.length;
      if (left_ == 0) {
        QueueReply(frame_, input_ == Input::kDrain ? refusal_ : OkStatus());
        EndFrame();
      }
      return true;
    }
    case FrameType::kRead: {
      Status range = host->CheckInboundRange(frame_.remote_addr, frame_.length);
      if (!range.ok()) {
        host->CountRejected();
        QueueReply(frame_, range);
      } else {
        QueueReadData(frame_);
      }
      EndFrame();
      return true;
    }
    case FrameType::kReply:
      return Refuse("unexpected REPLY frame");
  }
  return Refuse("unhandled frame type");
}

bool ServerConnection::EndControlFrame() {
  const std::string& secret = context_->secret;
  switch (frame_.type) {
    case FrameType::kHello: {
      client_nonce_ = std::move(payload_);
      server_nonce_ = crypto::RandomBytes(kHelloNonceBytes);
      std::string challenge =
          server_nonce_ + HelloServerProof(secret, client_nonce_, server_nonce_);
      phase_ = Phase::kProof;
      QueueReply(frame_, OkStatus(), std::move(challenge));
      break;
    }
    case FrameType::kHelloProof:
      if (frame_.status != 0 || payload_.empty()) {
        return Refuse(
            "the peer could not verify our HELLO proof: the shared secrets differ; set the same "
            "secret (FERRY_KV_SECRET) on both sides");
      }
      if (!crypto::ConstantTimeEqual(payload_,
                                     HelloClientProof(secret, server_nonce_, client_nonce_))) {
        Refuse("HELLO proof does not match our secret");
        RefuseAfterReply(frame_,
                         PermissionDeniedError("connection refused: the HELLO proof does not "
                                               "match this engine's secret; set the same secret "
                                               "(FERRY_KV_SECRET) on both sides"));
        break;
      }
      phase_ = Phase::kReady;
      client_nonce_.clear();
      server_nonce_.clear();
      QueueReply(frame_, OkStatus());
      break;
    case FrameType::kNotify: {
      Notification n;
      n.from = payload_.substr(0, frame_.aux);
      payload_.erase(0, frame_.aux);
      n.message = std::move(payload_);
      context_->host->DeliverNotification(std::move(n));
      QueueReply(frame_, OkStatus());
      break;
    }
    default:
      return Refuse("unexpected control frame");
  }
  EndFrame();
  return true;
}

void ServerConnection::EndFrame() {
  input_ = Input::kHeader;
  in_frame_ = false;
  left_ = 0;
  dst_ = nullptr;
  std::string().swap(payload_);  // a NOTIFY's buffer is not kept for the next frame
  last_frame_end_ = now_;
}

void ServerConnection::QueueReply(const FrameHeader& request, const Status& status,
                                  std::string body) {
  Reply r;
  FrameHeader h;
  h.type = FrameType::kReply;
  h.request_id = request.request_id;
  h.status = static_cast<int32_t>(status.code());
  if (status.ok()) {
    h.remote_addr = request.remote_addr;
    r.text = std::move(body);
  } else {
    r.text = status.message();
  }
  h.length = r.text.size();
  EncodeFrameHeader(h, r.header);
  if (out_.empty()) out_started_ = now_;
  out_.push_back(std::move(r));
}

void ServerConnection::QueueReadData(const FrameHeader& request) {
  Reply r;
  FrameHeader h;
  h.type = FrameType::kReply;
  h.request_id = request.request_id;
  h.remote_addr = request.remote_addr;
  h.length = request.length;
  h.aux = 1;
  EncodeFrameHeader(h, r.header);
  // Straight from the registered buffer.
  r.data = static_cast<const char*>(Address(request.remote_addr));
  r.data_len = request.length;
  if (out_.empty()) out_started_ = now_;
  out_.push_back(std::move(r));
}

bool ServerConnection::Flush() {
  while (!out_.empty()) {
    // Many replies to one sendmsg: header and body of each, in order.
    iovec iov[2 * kMaxFlushReplies];
    int count = 0;
    uint64_t asked = 0;
    size_t replies = 0;
    for (auto it = out_.begin(); it != out_.end() && replies < kMaxFlushReplies; ++it, ++replies) {
      Reply& r = *it;
      const char* body = r.data != nullptr ? r.data : r.text.data();
      const uint64_t body_len = r.data != nullptr ? r.data_len : r.text.size();
      if (r.sent < kFrameHeaderSize) {
        iov[count++] = {r.header + r.sent, kFrameHeaderSize - static_cast<size_t>(r.sent)};
      }
      uint64_t body_sent = r.sent > kFrameHeaderSize ? r.sent - kFrameHeaderSize : 0;
      if (body_len > body_sent) {
        iov[count++] = {const_cast<char*>(body) + body_sent, body_len - body_sent};
      }
      asked += kFrameHeaderSize + body_len - r.sent;
    }
    ssize_t n = SendSomeV(fd(), iov, count);
    if (n < 0) {
      if (WouldBlock(errno)) return true;  // EPOLLOUT continues it
      FERRY_LOG_DEBUG("tcp server: sending to {} failed: {}", peer_, std::strerror(errno));
      return false;
    }
    for (uint64_t left = static_cast<uint64_t>(n); !out_.empty();) {
      Reply& r = out_.front();
      const uint64_t total = kFrameHeaderSize + (r.data != nullptr ? r.data_len : r.text.size());
      const uint64_t take = std::min(left, total - r.sent);
      r.sent += take;
      left -= take;
      if (r.sent < total) break;
      if (r.data != nullptr) context_->host->CountInbound(TransferOp::kRead, r.data_len);
      out_.pop_front();
      if (!out_.empty()) out_started_ = now_;
    }
    if (static_cast<uint64_t>(n) < asked) return true;  // the socket is full; EPOLLOUT continues
  }
  return true;
}

bool ServerConnection::Refuse(const std::string& why) {
  uint64_t held_back = 0;
  if (context_->refusal_log.Allow(&held_back)) {
    if (held_back > 0) {
      FERRY_LOG_WARN("tcp server: refusing connection from {}: {} ({} more refusals not logged)",
                     peer_, why, held_back);
    } else {
      FERRY_LOG_WARN("tcp server: refusing connection from {}: {}", peer_, why);
    }
  }
  context_->host->CountRejected();
  return false;
}

void ServerConnection::RefuseAfterReply(const FrameHeader& request, const Status& status) {
  QueueReply(request, status);
  close_after_flush_ = true;
  EndFrame();
}

}  // namespace ferry::transfer::tcp
