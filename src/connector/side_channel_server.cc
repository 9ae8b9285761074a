#include "connector/side_channel_server.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>
#include <zmq.hpp>

#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "connector/internal/zmq_context.h"

namespace ferry::connector {
namespace internal {

zmq::context_t& ZmqContext() {
  static zmq::context_t* ctx = new zmq::context_t(1);
  return *ctx;
}

}  // namespace internal

namespace {

// The server's state shared with outstanding Calls (which may outlive the server).
class ServerCore {
 public:
  ServerCore(int event_fd, const std::string& secret)
      : event_fd_(event_fd), auth_(secret, "side-channel") {}
  ~ServerCore() { close(event_fd_); }

  // Queues a reply for the server thread; dropped once the server stopped.
  void Enqueue(std::vector<std::string> frames) {
    {
      MutexLock lock(&mu_);
      if (stopped_) return;
      outbox_.push_back(std::move(frames));
    }
    uint64_t one = 1;
    ssize_t n = write(event_fd_, &one, sizeof(one));
    (void)n;
  }
  std::deque<std::vector<std::string>> TakeOutbox() {
    MutexLock lock(&mu_);
    return std::exchange(outbox_, {});
  }
  void MarkStopped() {
    MutexLock lock(&mu_);
    stopped_ = true;
  }
  int event_fd() const { return event_fd_; }
  MessageAuth& auth() { return auth_; }

 private:
  const int event_fd_;
  MessageAuth auth_;
  Mutex mu_;
  bool stopped_ FERRY_GUARDED_BY(mu_) = false;
  std::deque<std::vector<std::string>> outbox_ FERRY_GUARDED_BY(mu_);  // whole multipart replies
};

struct ReplyRoute {
  std::shared_ptr<ServerCore> core;
  std::vector<std::string> route;  // identity (and delimiter) frames, as received
  // The authenticated request's nonce; "" without authentication and for refusals, which
  // go out unsigned (a single frame) since nothing authenticated is being answered.
  std::string request_nonce;
  void Send(const KvPullReply& reply) {
    std::vector<std::string> frames = route;
    frames.push_back(EncodePullReply(reply));
    if (!request_nonce.empty()) {
      frames.push_back(core->auth().SignReply(request_nonce, frames.back()));
    }
    core->Enqueue(std::move(frames));
  }
};

class SideChannelServerImpl final : public SideChannelServer {
 public:
  SideChannelServerImpl(Handler handler, std::shared_ptr<ServerCore> core)
      : handler_(std::move(handler)),
        core_(std::move(core)),
        router_(internal::ZmqContext(), zmq::socket_type::router) {}

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
      router_.set(zmq::sockopt::maxmsgsize, internal::kMaxSideChannelMessage);
      router_.set(zmq::sockopt::rcvhwm, 64);
      router_.set(zmq::sockopt::sndhwm, 1024);
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
  uint64_t unauthenticated_received() const override { return unauthenticated_.load(); }

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
          for (auto& frames : core_->TakeOutbox()) {
            for (size_t i = 0; i + 1 < frames.size(); ++i) {
              router_.send(zmq::buffer(frames[i]), zmq::send_flags::sndmore);
            }
            router_.send(zmq::buffer(frames.back()), zmq::send_flags::dontwait);
          }
        }
        // Several requests may be waiting; take them all before sleeping again.
        for (int i = 0; i < 64 && ReceiveOne(); ++i) {
        }
      } catch (const zmq::error_t& e) {
        if (stop_) break;
        FERRY_LOG_WARN("side channel: {}", e.what());
      }
    }
  }

  // Returns false when nothing was waiting.
  bool ReceiveOne() {
    std::vector<std::string> frames;
    for (;;) {
      zmq::message_t msg;
      if (!router_.recv(msg, zmq::recv_flags::dontwait)) break;
      frames.emplace_back(static_cast<const char*>(msg.data()), msg.size());
      if (!msg.more()) break;
      if (frames.size() > 8) {  // no legitimate request has this many frames: drain it
        while (msg.more() && router_.recv(msg, zmq::recv_flags::dontwait)) {
        }
        break;
      }
    }
    if (frames.empty()) return false;
    if (frames.size() < 2) return true;  // no identity: nothing to answer
    received_++;
    MessageAuth& auth = core_->auth();
    std::string tag_text;
    if (auth.enabled() && frames.size() >= 3) {
      tag_text = std::move(frames.back());
      frames.pop_back();
    }
    std::string payload = std::move(frames.back());
    frames.pop_back();
    auto route = std::make_shared<ReplyRoute>(ReplyRoute{core_, std::move(frames), ""});
    if (auth.enabled()) {
      Status ok = OkStatus();
      auto tag = AuthTag::Parse(tag_text);
      if (!tag.ok()) {
        ok = PermissionDeniedError(
            "side-channel: request refused: it carries no valid authentication tag (set the "
            "same FERRY_KV_SECRET on decode and prefill)");
      } else {
        ok = auth.Verify(payload, *tag);
      }
      if (!ok.ok()) {
        unauthenticated_++;
        FERRY_LOG_WARN("side channel: {}", ok.message());
        route->Send({PullStatus::kError, {}, {}, ok.message()});  // unsigned: it is not a reply
        return true;
      }
      route->request_nonce = tag->nonce;
    }
    auto request = DecodePullRequest(payload);
    if (!request.ok()) {
      malformed_++;
      FERRY_LOG_WARN("side channel: rejected a malformed request: {}", request.status().message());
      route->Send({PullStatus::kError, {}, {}, request.status().message()});
      return true;
    }
    handler_(Call(route, std::move(*request)));
    return true;
  }

  Handler handler_;
  std::shared_ptr<ServerCore> core_;
  zmq::socket_t router_;
  std::string endpoint_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> unauthenticated_{0};
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
                                                                     const Options& options,
                                                                     Handler handler) {
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return ErrnoToStatus(errno, "eventfd");
  auto server = std::make_unique<SideChannelServerImpl>(
      std::move(handler), std::make_shared<ServerCore>(efd, options.secret));
  FERRY_RETURN_IF_ERROR(server->Bind(host, port));
  return std::unique_ptr<SideChannelServer>(std::move(server));
}

}  // namespace ferry::connector
