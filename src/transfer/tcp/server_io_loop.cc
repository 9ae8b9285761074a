#include "transfer/tcp/server_io_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "common/log.h"
#include "common/mutex.h"

namespace ferry::transfer::tcp {
namespace {

constexpr auto kSweepInterval = std::chrono::milliseconds(100);
constexpr size_t kScratchBytes = 256u << 10;
constexpr int kMaxEvents = 64;

}  // namespace

Result<std::unique_ptr<ServerIoLoop>> ServerIoLoop::Start(ServerContext* context,
                                                          ConnectionLimits* limits) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return ErrnoToStatus(errno, "epoll_create1 for the tcp server");
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd for the tcp server");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake fd
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, wake.get(), &ev) < 0) {
    return ErrnoToStatus(errno, "epoll_ctl for the tcp server");
  }
  std::unique_ptr<ServerIoLoop> loop(
      new ServerIoLoop(context, limits, std::move(ep), std::move(wake)));
  try {
    loop->thread_ = std::thread([p = loop.get()] { p->Run(); });
  } catch (const std::system_error& e) {
    return ResourceExhaustedError(std::string("cannot start a tcp server thread: ") + e.what());
  }
  return loop;
}

ServerIoLoop::ServerIoLoop(ServerContext* context, ConnectionLimits* limits, UniqueFd epoll_fd,
                           UniqueFd wake_fd)
    : context_(context),
      limits_(limits),
      epoll_fd_(std::move(epoll_fd)),
      wake_fd_(std::move(wake_fd)),
      scratch_(kScratchBytes) {}

ServerIoLoop::~ServerIoLoop() {
  stopping_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  while (!slots_.empty()) Close(&slots_.front());
  MutexLock lock(&mu_);
  for (Pending& p : pending_) limits_->Release(p.ip);
  pending_.clear();
}

void ServerIoLoop::Adopt(UniqueFd fd, std::string ip, std::string peer) {
  load_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    pending_.push_back(Pending{std::move(fd), std::move(ip), std::move(peer)});
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_.get(), &one, sizeof(one));
}

void ServerIoLoop::Run() {
  epoll_event events[kMaxEvents];
  // One clock read per wake-up serves every connection handled in it.
  SteadyClock::time_point now = SteadyClock::now();
  SteadyClock::time_point next_sweep = now + kSweepInterval;
  while (!stopping_.load(std::memory_order_relaxed)) {
    int timeout_ms = -1;  // nothing to time out without connections
    if (!slots_.empty()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(next_sweep - now);
      timeout_ms = left.count() > 0 ? static_cast<int>(left.count()) : 0;
    }
    int n = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, timeout_ms);
    now = SteadyClock::now();
    if (n < 0) {
      if (errno == EINTR) continue;
      // Not expected (EBADF/EINVAL would be a bug); do not spin on it.
      FERRY_LOG_ERROR("tcp server: epoll_wait failed: {}", std::strerror(errno));
      std::this_thread::sleep_for(kSweepInterval);
      continue;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t count = 0;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_.get(), &count, sizeof(count));
        if (stopping_.load(std::memory_order_relaxed)) return;
        AdoptPending(now);
      } else {
        Handle(static_cast<Slot*>(events[i].data.ptr), events[i].events, now);
      }
    }
    if (slots_.empty()) {
      next_sweep = now + kSweepInterval;
    } else if (now >= next_sweep) {
      Sweep(now);
      next_sweep = now + kSweepInterval;
    }
  }
}

void ServerIoLoop::AdoptPending(SteadyClock::time_point now) {
  std::vector<Pending> adopt;
  {
    MutexLock lock(&mu_);
    adopt.swap(pending_);
  }
  for (Pending& p : adopt) {
    slots_.emplace_back();
    Slot& slot = slots_.back();
    slot.self = std::prev(slots_.end());
    slot.conn =
        std::make_unique<ServerConnection>(std::move(p.fd), p.ip, std::move(p.peer), context_, now);
    slot.events = slot.conn->WantedEvents();
    epoll_event ev{};
    ev.events = slot.events;
    ev.data.ptr = &slot;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, slot.conn->fd(), &ev) < 0) {
      FERRY_LOG_WARN("tcp server: cannot watch a new connection: {}", std::strerror(errno));
      Close(&slot);
    }
  }
}

void ServerIoLoop::Handle(Slot* slot, uint32_t events, SteadyClock::time_point now) {
  if (!slot->conn->OnReady(events, scratch_, now)) {
    Close(slot);
    return;
  }
  uint32_t want = slot->conn->WantedEvents();
  if (want == slot->events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = slot;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, slot->conn->fd(), &ev) < 0) {
    FERRY_LOG_WARN("tcp server: epoll_ctl failed: {}", std::strerror(errno));
    Close(slot);
    return;
  }
  slot->events = want;
}

void ServerIoLoop::Close(Slot* slot) {
  // Closing the fd removes it from the epoll set; events already fetched for it in this
  // round cannot refer to it (each fd is reported once per epoll_wait).
  limits_->Release(slot->conn->ip());
  load_.fetch_sub(1, std::memory_order_relaxed);
  slots_.erase(slot->self);
}

void ServerIoLoop::Sweep(SteadyClock::time_point now) {
  std::string why;
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot* slot = &*it;
    ++it;
    if (slot->conn->Expired(now, &why)) Close(slot);
  }
}

}  // namespace ferry::transfer::tcp
