#include "transfer/tcp/direct_call.h"

#include <poll.h>
#include <sys/uio.h>

#include "transfer/tcp/net.h"
#include "transfer/tcp/tcp_connection.h"

namespace ferry::transfer::tcp {
namespace {

// An idle connection is usable if nothing (EOF, reset, stray bytes) is waiting on it.
bool LooksAlive(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

Status DirectConnectionPool::Call(const std::string& host, uint16_t port, FrameType type,
                                  char* local, uint64_t remote, uint64_t length,
                                  Deadline deadline) {
  std::string key = host + ":" + std::to_string(port);
  for (int attempt = 0; attempt < 2; ++attempt) {
    UniqueFd fd;
    bool reused = false;
    if (attempt == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      auto& v = idle_[key];
      while (!v.empty() && !fd.valid()) {
        fd = std::move(v.back());
        v.pop_back();
        if (!LooksAlive(fd.get())) fd.Reset();
      }
      reused = fd.valid();
    }
    if (!fd.valid()) {
      auto r = DialAndGreet(host, port, secret_,
                            Deadline::Min(deadline, Deadline::In(connect_timeout_)));
      if (!r.ok()) return r.status().WithContext("cannot reach " + key);
      fd = std::move(*r);
    }
    bool reusable = false;
    Status s = Exchange(fd.get(), key, type, local, remote, length, deadline, &reusable);
    if (reusable) {
      std::lock_guard<std::mutex> lock(mu_);
      auto& v = idle_[key];
      if (v.size() < kMaxIdlePerPeer) v.push_back(std::move(fd));
    }
    if (s.ok() || reusable || !reused || s.code() != StatusCode::kUnavailable) return s;
  }
  return UnavailableError("connection to " + key + " failed twice");
}

Status DirectConnectionPool::Exchange(int fd, const std::string& peer, FrameType type, char* local,
                                      uint64_t remote, uint64_t length, Deadline deadline,
                                      bool* reusable) {
  *reusable = false;
  FrameHeader h;
  h.type = type;
  h.request_id = 1;
  h.remote_addr = remote;
  h.length = length;
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  iovec iov[2] = {{buf, sizeof(buf)}, {local, type == FrameType::kWrite ? length : 0}};
  FERRY_RETURN_IF_ERROR(SendAllV(fd, iov, 2, deadline));
  Status s = RecvAll(fd, buf, sizeof(buf), deadline);
  if (!s.ok()) {
    if (deadline.Expired()) {
      return DeadlineExceededError("request to " + peer + " did not finish by its deadline");
    }
    return s;
  }
  Result<FrameHeader> r = DecodeFrameHeader(buf);
  if (!r.ok() || r->type != FrameType::kReply || r->request_id != 1) {
    return UnavailableError("protocol error from " + peer);
  }
  if (r->status != 0) {
    if (r->length > kMaxControlPayload) return UnavailableError("protocol error from " + peer);
    std::string text(r->length, '\0');
    FERRY_RETURN_IF_ERROR(RecvAll(fd, text.data(), text.size(), deadline));
    *reusable = true;
    return Status(static_cast<StatusCode>(r->status), "peer " + peer + ": " + text);
  }
  if (type == FrameType::kRead) {
    if (r->length != length) return UnavailableError("protocol error from " + peer);
    Status rs = RecvAll(fd, local, length, deadline);
    if (!rs.ok()) {
      return deadline.Expired()
                 ? DeadlineExceededError("request to " + peer + " did not finish by its deadline")
                 : rs;
    }
  } else if (r->length != 0) {
    return UnavailableError("protocol error from " + peer);
  }
  *reusable = true;
  return OkStatus();
}

void DirectConnectionPool::Forget(const std::string& key) {
  std::vector<UniqueFd> drop;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return;
  drop.swap(it->second);
  idle_.erase(it);
}

}  // namespace ferry::transfer::tcp
