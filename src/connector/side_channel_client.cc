#include "connector/side_channel_client.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <list>
#include <optional>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "common/unique_fd.h"
#include "connector/internal/zmq_context.h"

namespace ferry::connector {
namespace {

// How often the loop wakes without traffic (deadline checks, shutdown).
constexpr auto kTick = std::chrono::milliseconds(100);
// Connect attempts refused in a row before the peer counts as unreachable.
constexpr int kMaxConnectRetries = 3;

struct Pending {
  std::string endpoint;
  std::vector<std::string> frames;  // request payload (+ tag)
  std::string nonce;                // the request's auth nonce ("" without a secret)
  Deadline deadline = Deadline::Infinite();
  SideChannelClient::Done done;
  // Set up on the client thread.
  std::optional<zmq::socket_t> sock;
  std::optional<zmq::socket_t> mon;
  bool connected = false;
  int retries = 0;
};

class SideChannelClientImpl final : public SideChannelClient {
 public:
  SideChannelClientImpl(const Options& options, UniqueFd wake)
      : options_(options), auth_(options.secret, "side-channel"), wake_(std::move(wake)) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~SideChannelClientImpl() override {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
  }

  Status Start(const std::string& endpoint, const KvPullRequest& request, Deadline deadline,
               Done done) override {
    auto p = std::make_unique<Pending>();
    p->endpoint = endpoint;
    p->frames.push_back(EncodePullRequest(request));
    if (auth_.enabled()) {
      AuthTag tag = auth_.Sign(p->frames[0]);
      p->nonce = tag.nonce;
      p->frames.push_back(tag.ToString());
    }
    p->deadline = deadline;
    p->done = std::move(done);
    {
      MutexLock lock(&mu_);
      if (stopping_) return AbortedError("side-channel client is shutting down");
      if (count_ >= options_.max_calls) {
        return ResourceExhaustedError("side channel: " + std::to_string(count_) +
                                      " calls in flight already (the limit); retry later");
      }
      ++count_;
      inbox_.push_back(std::move(p));
    }
    Wake();
    return OkStatus();
  }

  size_t in_flight() const override {
    MutexLock lock(&mu_);
    return count_;
  }

 private:
  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_.get(), &one, sizeof(one));
    (void)n;
  }

  // Ends a call: tears its sockets down safely, then runs its callback.
  void Finish(Pending& p, Result<KvPullReply> result) {
    if (p.sock) {
      // Stop the monitor while its reader is still open: an event raised after the reader
      // closed would block ZeroMQ's I/O thread (and with it every socket) for good.
      zmq_socket_monitor(p.sock->handle(), nullptr, 0);
      p.sock->close();
    }
    if (p.mon) p.mon->close();
    p.sock.reset();
    p.mon.reset();
    Done done = std::move(p.done);
    {
      MutexLock lock(&mu_);
      --count_;
    }
    if (done) done(std::move(result));
  }

  // Creates the call's sockets and sends the request. Errors end the call.
  Status Open(Pending& p) {
    // Monitor endpoints are names in the process-wide context: unique across clients.
    static std::atomic<uint64_t> next_monitor{0};
    const uint64_t seq = next_monitor.fetch_add(1);
    try {
      p.sock.emplace(internal::ZmqContext(), zmq::socket_type::dealer);
      p.sock->set(zmq::sockopt::linger, 0);
      p.sock->set(zmq::sockopt::maxmsgsize, internal::kMaxSideChannelMessage);
      p.sock->set(zmq::sockopt::heartbeat_ivl,
                  static_cast<int>(options_.heartbeat_interval.count()));
      p.sock->set(zmq::sockopt::heartbeat_timeout,
                  static_cast<int>(options_.heartbeat_timeout.count()));
      // A handshake that never completes (a paused peer whose kernel accepted the
      // connection) counts as silence too.
      p.sock->set(zmq::sockopt::handshake_ivl,
                  static_cast<int>(options_.heartbeat_timeout.count()));
      const std::string mon_addr = "inproc://ferry-sc-client-" + std::to_string(seq);
      if (zmq_socket_monitor(p.sock->handle(), mon_addr.c_str(),
                             ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                                 ZMQ_EVENT_CONNECT_RETRIED |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
        return InternalError("side channel: cannot monitor a socket: " +
                             std::string(zmq_strerror(zmq_errno())));
      }
      p.mon.emplace(internal::ZmqContext(), zmq::socket_type::pair);
      p.mon->set(zmq::sockopt::linger, 0);
      p.mon->connect(mon_addr);
      try {
        p.sock->connect(p.endpoint);
      } catch (const zmq::error_t& e) {
        return InvalidArgumentError("side channel endpoint '" + p.endpoint + "': " + e.what());
      }
      for (size_t i = 0; i < p.frames.size(); ++i) {
        const bool more = i + 1 < p.frames.size();
        p.sock->send(zmq::buffer(p.frames[i]),
                     more ? zmq::send_flags::sndmore : zmq::send_flags::dontwait);
      }
      p.frames.clear();
    } catch (const zmq::error_t& e) {
      return UnavailableError(std::string("side channel: ") + e.what());
    }
    return OkStatus();
  }

  // Reads the reply waiting on the call's socket.
  Result<KvPullReply> ReadReply(Pending& p) {
    std::vector<std::string> frames;
    for (;;) {
      zmq::message_t msg;
      if (!p.sock->recv(msg, zmq::recv_flags::dontwait)) break;
      if (frames.size() < 4) frames.emplace_back(static_cast<const char*>(msg.data()), msg.size());
      if (!msg.more()) break;
    }
    if (frames.empty()) return UnavailableError("side channel: empty reply from " + p.endpoint);
    if (auth_.enabled()) {
      if (frames.size() < 2) {
        auto peer = DecodePullReply(frames.back());
        return PermissionDeniedError(
            "prefill worker " + p.endpoint + " answered without authentication" +
            (peer.ok() && !peer->err_msg.empty() ? " (it said: " + peer->err_msg + ")"
                                                 : std::string()) +
            "; set the same FERRY_KV_SECRET on decode and prefill");
      }
      Status ok = auth_.VerifyReply(p.nonce, frames[frames.size() - 2], frames.back());
      if (!ok.ok()) return ok.WithContext("prefill worker " + p.endpoint);
      return DecodePullReply(frames[frames.size() - 2]);
    }
    return DecodePullReply(frames.back());
  }

  // Handles the call's monitor events; returns an error once the call must end.
  Status ReadEvents(Pending& p) {
    for (;;) {
      zmq::message_t event_frame, addr_frame;
      if (!p.mon->recv(event_frame, zmq::recv_flags::dontwait)) return OkStatus();
      if (event_frame.more()) (void)p.mon->recv(addr_frame, zmq::recv_flags::dontwait);
      uint16_t event = 0;
      if (event_frame.size() >= sizeof(event))
        std::memcpy(&event, event_frame.data(), sizeof(event));
      if (event == ZMQ_EVENT_CONNECTED) p.connected = true;
      if (event == ZMQ_EVENT_DISCONNECTED && p.connected) {
        return UnavailableError("prefill worker " + p.endpoint +
                                " went away (closed, died or stopped answering) before replying");
      }
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        return UnavailableError("prefill worker " + p.endpoint + " did not complete the handshake");
      }
      if (event == ZMQ_EVENT_CONNECT_RETRIED && !p.connected && ++p.retries >= kMaxConnectRetries) {
        return UnavailableError("cannot connect to prefill worker " + p.endpoint);
      }
    }
  }

  void Loop() {
    std::list<std::unique_ptr<Pending>> calls;
    std::vector<zmq::pollitem_t> items;
    std::vector<Pending*> order;
    for (;;) {
      bool stopping;
      std::vector<std::unique_ptr<Pending>> fresh;
      {
        MutexLock lock(&mu_);
        stopping = stopping_;
        fresh.swap(inbox_);
      }
      for (auto& p : fresh) {
        Status opened = Open(*p);
        if (!opened.ok()) {
          Finish(*p, opened);
          continue;
        }
        calls.push_back(std::move(p));
      }
      if (stopping) {
        for (auto& p : calls) Finish(*p, AbortedError("side-channel client shut down"));
        return;
      }
      // Wait for traffic, up to the nearest deadline.
      items.clear();
      order.clear();
      items.push_back({nullptr, wake_.get(), ZMQ_POLLIN, 0});
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(kTick);
      for (auto& p : calls) {
        items.push_back({p->sock->handle(), 0, ZMQ_POLLIN, 0});
        items.push_back({p->mon->handle(), 0, ZMQ_POLLIN, 0});
        order.push_back(p.get());
        auto left = std::chrono::ceil<std::chrono::milliseconds>(p->deadline.Remaining());
        if (left < wait) wait = left;
      }
      try {
        zmq::poll(items.data(), items.size(), wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) FERRY_LOG_WARN("side channel client: poll: {}", e.what());
      }
      if (items[0].revents & ZMQ_POLLIN) {
        uint64_t v;
        ssize_t n = ::read(wake_.get(), &v, sizeof(v));
        (void)n;
      }
      for (size_t i = 0; i < order.size(); ++i) {
        Pending& p = *order[i];
        std::optional<Result<KvPullReply>> result;
        try {
          if (items[1 + 2 * i].revents & ZMQ_POLLIN) {
            result = ReadReply(p);
          } else if (Status ev = ReadEvents(p); !ev.ok()) {
            result = ev;
          } else if (p.deadline.Expired()) {
            result =
                DeadlineExceededError("prefill worker " + p.endpoint + " did not reply in time");
          }
        } catch (const zmq::error_t& e) {
          result = UnavailableError(std::string("side channel: ") + e.what());
        }
        if (result) Finish(p, std::move(*result));  // resets p.sock: removed below
      }
      calls.remove_if([](const std::unique_ptr<Pending>& p) { return !p->sock; });
    }
  }

  const Options options_;
  MessageAuth auth_;
  const UniqueFd wake_;  // eventfd
  mutable Mutex mu_;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Pending>> inbox_ FERRY_GUARDED_BY(mu_);
  size_t count_ FERRY_GUARDED_BY(mu_) = 0;  // calls started, not finished
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<SideChannelClient>> SideChannelClient::Create(const Options& options) {
  if (options.max_calls == 0) return InvalidArgumentError("max_calls must be at least 1");
  if (options.heartbeat_interval.count() <= 0 ||
      options.heartbeat_timeout < options.heartbeat_interval) {
    return InvalidArgumentError("heartbeat_timeout must be at least heartbeat_interval (> 0)");
  }
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd");
  return std::unique_ptr<SideChannelClient>(new SideChannelClientImpl(options, std::move(wake)));
}

Result<KvPullReply> SideChannelClient::Call(const std::string& endpoint,
                                            const KvPullRequest& request, Deadline deadline) {
  struct Waiter {
    Mutex mu;
    CondVar cv;
    std::optional<Result<KvPullReply>> result FERRY_GUARDED_BY(mu);
  };
  auto w = std::make_shared<Waiter>();
  FERRY_RETURN_IF_ERROR(Start(endpoint, request, deadline, [w](Result<KvPullReply> r) {
    MutexLock lock(&w->mu);
    w->result = std::move(r);
    w->cv.SignalAll();
  }));
  MutexLock lock(&w->mu);
  // The client ends every call by its deadline (or at its destruction), so this returns.
  w->cv.Wait(&w->mu, [&]() FERRY_REQUIRES(w->mu) { return w->result.has_value(); });
  return std::move(*w->result);
}

}  // namespace ferry::connector
