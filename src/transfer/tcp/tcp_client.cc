#include "transfer/tcp/tcp_client.h"

#include <algorithm>

#include "common/mutex.h"

namespace ferry::transfer::tcp {

TcpClient::TcpClient(std::string secret, int connections_per_peer,
                     std::chrono::milliseconds connect_timeout)
    : secret_(std::move(secret)),
      connections_per_peer_(connections_per_peer < 1 ? 1 : connections_per_peer),
      connect_timeout_(connect_timeout) {}

TcpClient::~TcpClient() {
  std::map<std::string, std::shared_ptr<Peer>> peers;
  {
    MutexLock lock(&mu_);
    peers.swap(peers_);
  }
  // Connections' destructors fail pending ops with Aborted and join their threads.
}

Result<std::vector<std::shared_ptr<TcpConnection>>> TcpClient::Connections(const std::string& host,
                                                                           uint16_t port,
                                                                           Deadline d) {
  std::string key = host + ":" + std::to_string(port);
  std::shared_ptr<Peer> peer;
  {
    MutexLock lock(&mu_);
    auto& slot = peers_[key];
    if (!slot) slot = std::make_shared<Peer>();
    peer = slot;
  }
  std::vector<std::shared_ptr<TcpConnection>> live;
  std::vector<std::shared_ptr<TcpConnection>> dead;  // destroyed outside the lock
  Status last;
  {
    MutexLock lock(&peer->mu);
    peer->conns.resize(static_cast<size_t>(connections_per_peer_));
    Deadline connect_deadline = Deadline::Min(d, Deadline::In(connect_timeout_));
    for (auto& c : peer->conns) {
      if (c && c->broken()) dead.push_back(std::move(c));
      if (!c) {
        if (!last.ok()) continue;  // one failure is enough: the peer is unreachable
        auto r = TcpConnection::Connect(host, port, secret_, connect_deadline);
        if (!r.ok()) {
          last = r.status();
          continue;
        }
        c = std::move(*r);
      }
      live.push_back(c);
    }
  }
  if (live.empty()) {
    if (last.ok()) last = UnavailableError("no connection to " + key);
    return last.WithContext("cannot reach " + key);
  }
  return live;
}

void TcpClient::Submit(const std::string& host, uint16_t port,
                       std::span<std::shared_ptr<TcpOp>> ops) {
  if (ops.empty()) return;
  Deadline earliest = ops[0]->deadline;
  for (auto& op : ops) earliest = Deadline::Min(earliest, op->deadline);
  auto conns = Connections(host, port, earliest);
  if (!conns.ok()) {
    for (auto& op : ops) op->Complete(conns.status());
    return;
  }
  // Least outstanding bytes first, counting what this call has handed out so far; each
  // connection then gets its share in one Submit (one lock, one wake-up).
  const size_t n = conns->size();
  std::vector<uint64_t> load(n);
  std::vector<std::vector<std::shared_ptr<TcpOp>>> share(n);
  for (size_t i = 0; i < n; ++i) load[i] = (*conns)[i]->outstanding();
  for (auto& op : ops) {
    const size_t best =
        static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[best] += op->length + 1;  // + 1: control ops spread too
    share[best].push_back(std::move(op));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!share[i].empty()) (*conns)[i]->Submit(share[i]);
  }
}

Status TcpClient::Call(const std::string& host, uint16_t port, std::shared_ptr<TcpOp> op) {
  {
    // An idle connection runs the op on this thread (no thread hops).
    auto conns = Connections(host, port, op->deadline);
    if (!conns.ok()) return conns.status();
    Status inline_status;
    op->done = [&inline_status](const Status& s) { inline_status = s; };
    for (auto& c : *conns) {
      if (c->TryRunInline(op)) return inline_status;
    }
    op->done = nullptr;
  }
  struct Waiter {
    Mutex mu;
    CondVar cv;
    bool done FERRY_GUARDED_BY(mu) = false;
    Status status FERRY_GUARDED_BY(mu);
  };
  auto w = std::make_shared<Waiter>();
  op->done = [w](const Status& s) {
    MutexLock lock(&w->mu);
    w->done = true;
    w->status = s;
    w->cv.SignalAll();
  };
  Deadline d = op->deadline;
  std::shared_ptr<TcpOp> ops[1] = {op};
  Submit(host, port, ops);
  MutexLock lock(&w->mu);
  // The connection enforces op->deadline; the extra second only guards against a bug.
  if (!w->cv.WaitUntil(&w->mu,
                       d.IsInfinite() ? SteadyClock::now() + std::chrono::hours(24)
                                      : d.when() + std::chrono::seconds(1),
                       [&]() FERRY_REQUIRES(w->mu) { return w->done; })) {
    return DeadlineExceededError("call to " + host + ":" + std::to_string(port) + " timed out");
  }
  return w->status;
}

Status TcpClient::Connect(const std::string& host, uint16_t port, Deadline deadline) {
  return Connections(host, port, deadline).status();
}

void TcpClient::Forget(const std::string& key) {
  std::shared_ptr<Peer> peer;
  {
    MutexLock lock(&mu_);
    auto it = peers_.find(key);
    if (it == peers_.end()) return;
    peer = std::move(it->second);
    peers_.erase(it);
  }
}

}  // namespace ferry::transfer::tcp
