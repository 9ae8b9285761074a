// ServerConnection: the target side of one accepted tcp connection, as a non-blocking
// state machine that a ServerIoLoop drives from epoll readiness.
//
// It first runs the HELLO challenge-response (wire.h) and accepts no other frame before
// the peer proved it knows the secret. Then it reads frames incrementally: the 40-byte
// header, then the payload. WRITE payloads are received straight into the target memory
// (after TransportHost::CheckInboundRange accepted the range) in large recv calls as bytes
// arrive, never staged; the call that receives a payload's end also takes the next
// frame's header, so a small WRITE costs about one recvmsg. READ replies are sent straight
// from the target memory with sendmsg, continuing when the socket is writable again. A
// refused WRITE of up to kMaxDrain bytes is drained so the connection stays usable; a
// larger one is answered and the connection closed. Replies go out in request order,
// gathered: the replies to everything one OnReady read leave together (up to
// kMaxFlushReplies per sendmsg); while kMaxQueuedReplies wait, no new frame is read (the
// peer must read its replies).
//
// Deadlines (TcpServerOptions): the HELLO exchange within hello_timeout of accept; a frame
// that started arriving, or a reply that started going out, within frame_timeout; a
// greeted connection with nothing in progress is closed after idle_timeout.
//
//   ServerConnection c(std::move(fd), "10.0.0.7", "10.0.0.7:41234", &context, now);
//   if (!c.OnReady(events, scratch, now)) close_it();    // on epoll readiness
//   uint32_t want = c.WantedEvents();               // EPOLLIN and/or EPOLLOUT
//   if (std::string why; c.Expired(now, &why)) close_it();   // now and then
//
// Thread safety: thread-compatible; one loop thread drives a connection. Never blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <string>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"
#include "transfer/tcp/log_limiter.h"
#include "transfer/tcp/tcp_server_options.h"
#include "transfer/tcp/wire.h"
#include "transfer/transport.h"

namespace ferry::transfer::tcp {

// What every connection of one server shares; owned by the TcpServer, outlives them.
struct ServerContext {
  TcpServerOptions options;
  std::string secret;
  TransportHost* host = nullptr;
  // Rate-limits the warnings about refused connections and frames (one a second).
  LogLimiter refusal_log{std::chrono::seconds(1)};
};

class ServerConnection {
 public:
  // Payloads of refused WRITEs up to this size are drained; larger ones close.
  static constexpr uint64_t kMaxDrain = 64ull << 20;
  // Replies that may wait for the socket before reading stops.
  static constexpr size_t kMaxQueuedReplies = 16;
  // Payload bytes handled per OnReady call, so one busy peer cannot starve the others.
  static constexpr uint64_t kReadBudget = 16ull << 20;
  // Replies handed to one sendmsg at most.
  static constexpr size_t kMaxFlushReplies = 64;

  // `fd`: accepted, non-blocking. `ip` counts against the per-peer cap; `peer` ("ip:port")
  // names it in messages. `context` outlives the connection.
  ServerConnection(UniqueFd fd, std::string ip, std::string peer, ServerContext* context,
                   SteadyClock::time_point now);
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& ip() const { return ip_; }

  // Handles readiness `events` (EPOLLIN/OUT/ERR/HUP bits) noticed at `now`: reads and
  // answers what has arrived, sends what the socket takes. `scratch` is the loop's buffer
  // for draining refused payloads. Returns false when the connection must be closed now
  // (peer gone, protocol error, refusal); the reason was logged and counted.
  bool OnReady(uint32_t events, std::span<char> scratch, SteadyClock::time_point now);

  // The epoll events this connection waits for now (EPOLLIN and/or EPOLLOUT).
  uint32_t WantedEvents() const;

  // True if a deadline passed at `now` (the connection must be closed); *why says which.
  // A HELLO or frame timeout also counts as a refusal (TransportHost::CountRejected).
  bool Expired(SteadyClock::time_point now, std::string* why);

 private:
  enum class Phase : uint8_t { kHello, kProof, kReady };
  enum class Input : uint8_t { kHeader, kToMemory, kToPayload, kDrain };
  // One reply on its way out: header, then `text` or `data_len` bytes at `data` (target
  // memory, READ replies).
  struct Reply {
    char header[kFrameHeaderSize];
    std::string text;
    const char* data = nullptr;
    uint64_t data_len = 0;
    uint64_t sent = 0;  // of header + body
  };

  // Reads frames until the socket is empty, a frame completed, or the budget is spent.
  bool ReadSome(std::span<char> scratch);
  // `got` more header bytes arrived in header_; once it is whole, BeginFrame.
  bool HeaderBytes(uint64_t got);
  // A header arrived: checks it against the phase and starts the frame.
  bool BeginFrame();
  // The payload of a HELLO / HELLO_PROOF / NOTIFY frame arrived.
  bool EndControlFrame();
  void EndFrame();
  void QueueReply(const FrameHeader& request, const Status& status, std::string body = {});
  void QueueReadData(const FrameHeader& request);
  // Sends queued replies, many per sendmsg, until done or the socket is full. False on a
  // send error.
  bool Flush();
  // Logs (rate-limited) and counts a refusal; returns false (close).
  bool Refuse(const std::string& why);
  // Queues a refusal reply and closes once it went out (or at the frame timeout).
  void RefuseAfterReply(const FrameHeader& request, const Status& status);

  const UniqueFd fd_;
  const std::string ip_;
  const std::string peer_;
  ServerContext* const context_;

  Phase phase_ = Phase::kHello;
  std::string client_nonce_;
  std::string server_nonce_;
  const SteadyClock::time_point accepted_;
  SteadyClock::time_point now_;  // of the OnReady call in progress (one clock read per wake)

  Input input_ = Input::kHeader;
  char header_[kFrameHeaderSize];
  size_t header_got_ = 0;
  FrameHeader frame_;      // the frame being received (valid after its header)
  char* dst_ = nullptr;    // kToMemory: where the next payload byte goes
  uint64_t left_ = 0;      // payload bytes still to receive
  std::string payload_;    // kToPayload: control payload received so far
  Status refusal_;         // kDrain: the answer once drained
  bool in_frame_ = false;  // a frame's first byte arrived, its end not yet
  SteadyClock::time_point frame_started_;
  SteadyClock::time_point last_frame_end_;

  std::deque<Reply> out_;
  SteadyClock::time_point out_started_;  // when out_.front() became the front
  bool close_after_flush_ = false;       // refused: close once out_ went out
};

}  // namespace ferry::transfer::tcp
