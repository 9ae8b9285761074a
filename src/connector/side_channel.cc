#include "connector/side_channel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "common/log.h"

namespace ferry::connector {
namespace {

// One ZeroMQ context per process; sockets set linger 0 so that closing never blocks.
zmq::context_t& Context() {
  static zmq::context_t* ctx = new zmq::context_t(1);  // never destroyed: sockets may
  return *ctx;                                         // outlive static destructors
}

// The server's state shared with outstanding Calls (which may outlive the server).
class ServerCore {
 public:
  explicit ServerCore(int event_fd) : event_fd_(event_fd) {}
  ~ServerCore() { close(event_fd_); }

  // Queues a reply for the server thread; dropped once the server stopped.
  void Enqueue(std::vector<std::string> route, std::string payload) {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      outbox_.emplace_back(std::move(route), std::move(payload));
    }
    uint64_t one = 1;
    ssize_t n = write(event_fd_, &one, sizeof(one));
    (void)n;
  }
  std::deque<std::pair<std::vector<std::string>, std::string>> TakeOutbox() {
    std::lock_guard lock(mu_);
    return std::exchange(outbox_, {});
  }
  void MarkStopped() {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  int event_fd() const { return event_fd_; }

 private:
  const int event_fd_;
  std::mutex mu_;
  bool stopped_ = false;                                                 // GUARDED_BY(mu_)
  std::deque<std::pair<std::vector<std::string>, std::string>> outbox_;  // GUARDED_BY(mu_)
};

struct ReplyRoute {
  std::shared_ptr<ServerCore> core;
  std::vector<std::string> route;  // identity and delimiter frames, as received
  void Send(const KvPullReply& reply) { core->Enqueue(route, EncodePullReply(reply)); }
};

class SideChannelServerImpl final : public SideChannelServer {
 public:
  SideChannelServerImpl(Handler handler, std::shared_ptr<ServerCore> core)
      : handler_(std::move(handler)),
        core_(std::move(core)),
        router_(Context(), zmq::socket_type::router) {}

  ~SideChannelServerImpl() override {
    stop_ = true;
    core_->MarkStopped();
    uint64_t one = 1;
    ssize_t n = write(core_->event_fd(), &one, sizeof(one));
    (void)n;
    if (thread_.joinable()) thread_.join();
  }

  Status Bind(const std::string& host, uint16_t port) {
    try {
      router_.set(zmq::sockopt::linger, 0);
      router_.set(zmq::sockopt::router_mandatory, 0);
      std::string addr =
          "tcp://" + host + ":" + (port == 0 ? std::string("*") : std::to_string(port));
      router_.bind(addr);
      endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      if (e.num() == EADDRINUSE) {
        return AlreadyExistsError("side channel cannot bind " + host + ":" + std::to_string(port) +
                                  ": port in use");
      }
      return InvalidArgumentError("side channel cannot bind " + host + ":" + std::to_string(port) +
                                  ": " + e.what());
    }
    thread_ = std::thread([this] { Loop(); });
    return OkStatus();
  }

  std::string endpoint() const override { return endpoint_; }
  uint64_t requests_received() const override { return received_.load(); }
  uint64_t malformed_received() const override { return malformed_.load(); }

 private:
  void Loop() {
    zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, core_->event_fd(), ZMQ_POLLIN, 0}};
    while (!stop_) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(200));
        if (items[1].revents & ZMQ_POLLIN) {
          uint64_t v;
          ssize_t n = read(core_->event_fd(), &v, sizeof(v));
          (void)n;
          for (auto& [route, payload] : core_->TakeOutbox()) {
            for (auto& frame : route) router_.send(zmq::buffer(frame), zmq::send_flags::sndmore);
            router_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
          }
        }
        if (items[0].revents & ZMQ_POLLIN) ReceiveOne();
      } catch (const zmq::error_t& e) {
        if (stop_) break;
        FERRY_LOG_WARN("side channel: {}", e.what());
      }
    }
  }

  void ReceiveOne() {
    std::vector<std::string> frames;
    for (;;) {
      zmq::message_t msg;
      if (!router_.recv(msg, zmq::recv_flags::dontwait)) break;
      frames.emplace_back(static_cast<const char*>(msg.data()), msg.size());
      if (!msg.more()) break;
    }
    if (frames.size() < 2) return;  // no identity: nothing to answer
    received_++;
    std::string payload = std::move(frames.back());
    frames.pop_back();
    auto route = std::make_shared<ReplyRoute>(ReplyRoute{core_, std::move(frames)});
    auto request = DecodePullRequest(payload);
    if (!request.ok()) {
      malformed_++;
      FERRY_LOG_WARN("side channel: rejected a malformed request: {}", request.status().message());
      route->Send({PullStatus::kError, {}, {}, request.status().message()});
      return;
    }
    handler_(Call(route, std::move(*request)));
  }

  Handler handler_;
  std::shared_ptr<ServerCore> core_;
  zmq::socket_t router_;
  std::string endpoint_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> malformed_{0};
};

}  // namespace

SideChannelServer::Call::Call(std::shared_ptr<void> impl, KvPullRequest request)
    : impl_(std::move(impl)), request_(std::move(request)) {}

SideChannelServer::Call::~Call() {
  if (impl_) Reply({PullStatus::kError, {}, {}, "request dropped by the prefill worker"});
}

void SideChannelServer::Call::Reply(const KvPullReply& reply) {
  if (!impl_) return;
  static_cast<ReplyRoute*>(impl_.get())->Send(reply);
  impl_.reset();
}

Result<std::unique_ptr<SideChannelServer>> SideChannelServer::Create(const std::string& host,
                                                                     uint16_t port,
                                                                     Handler handler) {
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return ErrnoToStatus(errno, "eventfd");
  auto server = std::make_unique<SideChannelServerImpl>(std::move(handler),
                                                        std::make_shared<ServerCore>(efd));
  FERRY_RETURN_IF_ERROR(server->Bind(host, port));
  return std::unique_ptr<SideChannelServer>(std::move(server));
}

Result<KvPullReply> SendPullRequest(const std::string& endpoint, const KvPullRequest& request,
                                    Deadline deadline) {
  static std::atomic<uint64_t> monitor_seq{0};
  try {
    zmq::socket_t sock(Context(), zmq::socket_type::dealer);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::heartbeat_ivl, 1000);
    sock.set(zmq::sockopt::heartbeat_timeout, 3000);
    // The monitor tells us when the peer's connection drops (a dead prefill process).
    std::string mon_addr = "inproc://ferry-sc-mon-" + std::to_string(monitor_seq++);
    if (zmq_socket_monitor(
            sock.handle(), mon_addr.c_str(),
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED) != 0) {
      return InternalError("side channel: cannot monitor socket");
    }
    zmq::socket_t mon(Context(), zmq::socket_type::pair);
    mon.set(zmq::sockopt::linger, 0);
    mon.connect(mon_addr);
    try {
      sock.connect(endpoint);
    } catch (const zmq::error_t& e) {
      return InvalidArgumentError("side channel endpoint '" + endpoint + "': " + e.what());
    }
    std::string payload = EncodePullRequest(request);
    sock.send(zmq::buffer(payload), zmq::send_flags::none);

    bool connected = false;
    int retries = 0;
    zmq::pollitem_t items[] = {{sock.handle(), 0, ZMQ_POLLIN, 0}, {mon.handle(), 0, ZMQ_POLLIN, 0}};
    while (!deadline.Expired()) {
      auto wait =
          std::min<std::chrono::nanoseconds>(deadline.Remaining(), std::chrono::milliseconds(100));
      zmq::poll(items, 2,
                std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                    std::chrono::milliseconds(1));
      if (items[0].revents & ZMQ_POLLIN) {
        std::string last;
        for (;;) {
          zmq::message_t msg;
          if (!sock.recv(msg, zmq::recv_flags::dontwait)) break;
          last.assign(static_cast<const char*>(msg.data()), msg.size());
          if (!msg.more()) break;
        }
        return DecodePullReply(last);
      }
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t event_frame, addr_frame;
        if (!mon.recv(event_frame, zmq::recv_flags::dontwait)) continue;
        if (event_frame.more()) (void)mon.recv(addr_frame, zmq::recv_flags::dontwait);
        uint16_t event = 0;
        if (event_frame.size() >= sizeof(event)) {
          std::memcpy(&event, event_frame.data(), sizeof(event));
        }
        if (event == ZMQ_EVENT_CONNECTED) connected = true;
        if (event == ZMQ_EVENT_DISCONNECTED && connected) {
          return UnavailableError("prefill worker " + endpoint + " went away before replying");
        }
        if (event == ZMQ_EVENT_CONNECT_RETRIED && !connected && ++retries >= 3) {
          return UnavailableError("cannot connect to prefill worker " + endpoint);
        }
      }
    }
    return DeadlineExceededError("prefill worker " + endpoint + " did not reply in time");
  } catch (const zmq::error_t& e) {
    return UnavailableError(std::string("side channel: ") + e.what());
  }
}

}  // namespace ferry::connector
