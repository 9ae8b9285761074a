#include "transfer/ucx/ucx_worker.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"
#include "common/mutex.h"

namespace ferry::transfer::ucx {
namespace {

// Longest sleep in epoll while requests are in flight (deadline sweep granularity), and
// while idle (nothing to sweep; a signal or a UCX event wakes the thread at once).
constexpr int kBusySleepMs = 5;
constexpr int kIdleSleepMs = 100;
// How long a forced endpoint close may take before its request is left to complete later.
constexpr auto kCloseWait = std::chrono::milliseconds(100);
// Progress calls per loop iteration at most (so that the queue and deadlines are looked at).
constexpr int kProgressBurst = 64;
constexpr size_t kFlush = SIZE_MAX;

std::string UcsError(ucs_status_t s) { return ucs_status_string(s); }

}  // namespace

// One endpoint to one peer process, with the peer's rkeys unpacked on it.
struct UcxWorker::Conn {
  uint64_t id = 0;
  UcxWorker* owner = nullptr;
  std::string key, name;
  ucp_ep_h ep = nullptr;
  std::string worker_address;
  uint64_t version = 0;
  std::shared_ptr<const UcxPeerInfo> info;
  std::vector<ucp_rkey_h> rkeys;      // parallel to info->buffers
  std::vector<ucp_rkey_h> old_rkeys;  // of earlier versions, while submissions may use them
  std::set<Group*> groups;            // unfinished submissions with requests on ep
};

// One Submit to one peer.
struct UcxWorker::Group {
  std::vector<Slice> slices;
  std::vector<uint8_t> completed;  // per slice
  std::vector<size_t> writes;      // puts posted; they complete with the flush
  Deadline deadline = Deadline::Infinite();
  std::string peer;
  Conn* conn = nullptr;    // null: no endpoint (any longer)
  size_t left = 0;         // slices not yet completed
  size_t outstanding = 0;  // UCX requests whose callback has not run
  Status override_status;  // non-OK: completions report this instead (endpoint closing)
};

// The user data of one UCX request.
struct UcxWorker::Op {
  UcxWorker* owner = nullptr;
  Group* group = nullptr;
  size_t index = 0;  // slice index, or kFlush
};

Result<std::unique_ptr<UcxWorker>> UcxWorker::Create(const UcxSettings& settings, RefuseFn refuse) {
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return UnavailableError("ucx: cannot read UCX configuration: " + UcsError(st));
  for (const auto& [name, value] : settings.config) {
    st = ucp_config_modify(config, name.c_str(), value.c_str());
    if (st != UCS_OK) {
      ucp_config_release(config);
      return InvalidArgumentError(
          fmt::format("ucx: UCX rejects {}={}: {}", name, value, UcsError(st)));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.name = "ferry";
  ucp_context_h context = nullptr;
  st = ucp_init(&params, config, &context);
  ucp_config_release(config);
  std::string described;
  for (const auto& [name, value] : settings.config) {
    described += fmt::format(" UCX_{}={}", name, value);
  }
  if (st != UCS_OK) {
    return UnavailableError(
        fmt::format("ucx: cannot create a UCX context ({}) with{}: no usable transport or device? "
                    "(ucx_info -d lists them)",
                    UcsError(st), described.empty() ? " the defaults" : described));
  }
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // one thread at a time: creator, then ours
  ucp_worker_h worker = nullptr;
  st = ucp_worker_create(context, &wp, &worker);
  if (st != UCS_OK) {
    ucp_cleanup(context);
    return UnavailableError(
        fmt::format("ucx: cannot create a UCX worker ({}) with{}: no usable transport or device?",
                    UcsError(st), described.empty() ? " the defaults" : described));
  }
  auto fail = [&](Status s) -> Result<std::unique_ptr<UcxWorker>> {
    ucp_worker_destroy(worker);
    ucp_cleanup(context);
    return s;
  };
  int efd = -1;
  st = ucp_worker_get_efd(worker, &efd);
  if (st != UCS_OK) return fail(UnavailableError("ucx: no wake-up fd: " + UcsError(st)));
  ucp_address_t* addr = nullptr;
  size_t addr_len = 0;
  st = ucp_worker_get_address(worker, &addr, &addr_len);
  if (st != UCS_OK) return fail(UnavailableError("ucx: no worker address: " + UcsError(st)));
  std::string address(reinterpret_cast<const char*>(addr), addr_len);
  ucp_worker_release_address(worker, addr);
  if (address.size() > UcxPeerInfo::kMaxWorkerAddressBytes) {
    return fail(UnavailableError(
        fmt::format("ucx: the worker address is {} bytes, more than peers accept ({}); "
                    "limit the devices with device_name",
                    address.size(), UcxPeerInfo::kMaxWorkerAddressBytes)));
  }
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return fail(ErrnoToStatus(errno, "ucx: epoll_create1"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) {
    Status s = ErrnoToStatus(errno, "ucx: epoll_ctl");
    ::close(ep);
    return fail(s);
  }
  return std::unique_ptr<UcxWorker>(
      new UcxWorker(context, worker, ep, std::move(address), settings, std::move(refuse)));
}

UcxWorker::UcxWorker(ucp_context_h context, ucp_worker_h worker, int epoll_fd, std::string address,
                     const UcxSettings& settings, RefuseFn refuse)
    : context_(context),
      worker_(worker),
      epoll_fd_(epoll_fd),
      address_(std::move(address)),
      busy_poll_(settings.busy_poll),
      peer_errors_(settings.peer_errors),
      refuse_(std::move(refuse)) {
  thread_ = std::thread([this] { Loop(); });
}

UcxWorker::~UcxWorker() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  ucp_worker_signal(worker_);
  thread_.join();
  ::close(epoll_fd_);
  ucp_worker_destroy(worker_);
  ucp_cleanup(context_);
}

void UcxWorker::Post(Task task) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    if (!stop_) {
      queue_.push_back(std::move(task));
      wake = sleeping_;
      sleeping_ = false;  // one signal per sleep is enough
      task = nullptr;
    }
  }
  if (task) {
    task(/*aborted=*/true);
    return;
  }
  if (wake) ucp_worker_signal(worker_);
}

void UcxWorker::Submit(Peer peer, std::vector<Slice> slices, Deadline deadline) {
  Post([this, peer = std::move(peer), slices = std::move(slices), deadline](bool aborted) mutable {
    if (aborted) {
      for (Slice& s : slices) s.done(AbortedError("ucx transport shut down"));
      return;
    }
    StartGroup(peer, slices, deadline);
  });
}

template <typename T>
Result<T> UcxWorker::RunOnThread(std::function<Result<T>()> fn, Deadline deadline,
                                 const char* what) {
  struct Reply {
    Mutex mu;
    CondVar cv;
    bool done FERRY_GUARDED_BY(mu) = false;
    Result<T> result FERRY_GUARDED_BY(mu) = AbortedError("ucx transport shut down");
  };
  auto reply = std::make_shared<Reply>();
  Post([reply, fn = std::move(fn)](bool aborted) {
    Result<T> r = aborted ? Result<T>(AbortedError("ucx transport shut down")) : fn();
    MutexLock lock(&reply->mu);
    reply->result = std::move(r);
    reply->done = true;
    reply->cv.SignalAll();
  });
  MutexLock lock(&reply->mu);
  if (!reply->cv.WaitUntil(&reply->mu, deadline.when(),
                           [&]() FERRY_REQUIRES(reply->mu) { return reply->done; })) {
    return DeadlineExceededError(fmt::format("ucx: the progress thread did not {} in time", what));
  }
  return reply->result;
}

Result<std::string> UcxWorker::SetLocalBuffers(std::vector<BufferDescriptor> buffers,
                                               Deadline deadline) {
  return RunOnThread<std::string>([this, buffers = std::move(buffers)] { return Remap(buffers); },
                                  deadline, "(un)map memory");
}

Result<void*> UcxWorker::Allocate(size_t length, Deadline deadline) {
  if (length == 0) return InvalidArgumentError("ucx: cannot allocate 0 bytes");
  return RunOnThread<void*>(
      [this, length]() -> Result<void*> {
        ucp_mem_map_params_t mp{};
        mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                        UCP_MEM_MAP_PARAM_FIELD_FLAGS;
        mp.address = nullptr;
        mp.length = length;
        mp.flags = UCP_MEM_MAP_ALLOCATE;
        ucp_mem_h memh = nullptr;
        ucs_status_t st = ucp_mem_map(context_, &mp, &memh);
        if (st != UCS_OK) {
          return UnavailableError(
              fmt::format("ucx: cannot allocate {} bytes: {}", length, UcsError(st)));
        }
        ucp_mem_attr_t attr{};
        attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
        st = ucp_mem_query(memh, &attr);
        const long page = ::sysconf(_SC_PAGESIZE);
        if (st != UCS_OK || attr.length < length ||
            reinterpret_cast<uintptr_t>(attr.address) % static_cast<uintptr_t>(page) != 0) {
          ucp_mem_unmap(context_, memh);
          return UnavailableError(
              fmt::format("ucx: the {} bytes UCX allocated are not usable ({}: {} bytes at {})",
                          length, UcsError(st), attr.length, attr.address));
        }
        allocated_[reinterpret_cast<uint64_t>(attr.address)] = {attr.length, memh};
        return attr.address;
      },
      deadline, "allocate memory");
}

Status UcxWorker::Free(void* addr, Deadline deadline) {
  return RunOnThread<bool>(
             [this, addr]() -> Result<bool> {
               const auto key = reinterpret_cast<uint64_t>(addr);
               auto it = allocated_.find(key);
               if (it == allocated_.end()) {
                 return NotFoundError(fmt::format("ucx: {} is not memory ucx allocated", addr));
               }
               auto mapped = local_.find(key);
               if (mapped != local_.end() && mapped->second.allocated) {
                 return FailedPreconditionError(
                     fmt::format("ucx: {} is still a registered buffer", addr));
               }
               ucs_status_t st = ucp_mem_unmap(context_, it->second.memh);
               allocated_.erase(it);
               if (st != UCS_OK) {
                 FERRY_LOG_WARN("ucx: freeing {} failed: {}", addr, UcsError(st));
               }
               return true;
             },
             deadline, "free memory")
      .status();
}

void UcxWorker::ForgetPeer(const std::string& name) {
  Post([this, name](bool aborted) {
    if (aborted) return;
    std::vector<uint64_t> ids;
    for (const auto& [key, conn] : conns_) {
      if (conn->name == name) ids.push_back(conn->id);
    }
    for (uint64_t id : ids) FailConn(id, UnavailableError("ucx: peer " + name + " was forgotten"));
  });
}

UcxCounters UcxWorker::counters() const {
  UcxCounters c;
  c.bytes_written = counters_.bytes_written.load();
  c.bytes_read = counters_.bytes_read.load();
  c.slices_done = counters_.slices_done.load();
  c.slices_failed = counters_.slices_failed.load();
  c.endpoints_created = counters_.endpoints_created.load();
  c.endpoint_errors = counters_.endpoint_errors.load();
  c.deadline_closes = counters_.deadline_closes.load();
  return c;
}

// ---- the progress thread ------------------------------------------------------------------

void UcxWorker::Loop() {
  auto last_event = SteadyClock::now();
  auto last_sweep = last_event;
  while (true) {
    std::deque<Task> tasks;
    bool stop = false;
    {
      MutexLock lock(&mu_);
      tasks.swap(queue_);
      stop = stop_;
      sleeping_ = false;
    }
    for (Task& t : tasks) t(/*aborted=*/stop);
    if (stop) break;
    int progressed = 0;
    while (progressed < kProgressBurst && ucp_worker_progress(worker_) != 0) ++progressed;
    std::vector<uint64_t> failed;
    failed.swap(failed_conns_);
    for (uint64_t id : failed) {
      FailConn(id, UnavailableError("ucx: the endpoint failed (peer gone or unreachable)"));
    }
    auto now = SteadyClock::now();
    if (progressed > 0 || !tasks.empty() || !failed.empty()) last_event = now;
    // Finished groups whose requests never called back (an endpoint closed while UCX kept
    // them pending) do not keep the thread polling.
    const bool busy = unfinished_groups_ > 0 || !closing_.empty();
    if (busy && now - last_sweep >= std::chrono::milliseconds(1)) {
      SweepDeadlines();
      last_sweep = now;
    }
    ReapGroups();
    if (progressed == kProgressBurst) continue;
    // Poll on briefly after any event: in flight requests complete sooner, and as a target
    // (UCX emulating RMA with messages over tcp or shared memory) the next one comes soon.
    if (now - last_event < busy_poll_) continue;
    // Sleep until UCX has an event, a caller signals, or the sweep timeout passes.
    if (ucp_worker_arm(worker_) == UCS_ERR_BUSY) continue;
    {
      MutexLock lock(&mu_);
      if (!queue_.empty() || stop_) continue;
      sleeping_ = true;
    }
    epoll_event ev;
    int n = ::epoll_wait(epoll_fd_, &ev, 1, busy ? kBusySleepMs : kIdleSleepMs);
    (void)n;  // whatever woke us, the next iteration looks at everything
  }
  Shutdown();
}

void UcxWorker::Shutdown() {
  // Tasks posted until stop_ was set have run (aborted); later ones were refused by Post.
  for (auto& g : groups_) g->override_status = AbortedError("ucx transport shut down");
  std::vector<uint64_t> ids;
  for (const auto& [key, conn] : conns_) ids.push_back(conn->id);
  for (uint64_t id : ids) FailConn(id, AbortedError("ucx transport shut down"));
  for (auto& g : groups_) {
    for (size_t i = 0; i < g->slices.size(); ++i) {
      Complete(g.get(), i, AbortedError("ucx transport shut down"));
    }
  }
  auto until = SteadyClock::now() + std::chrono::seconds(1);
  while (!closing_.empty() && SteadyClock::now() < until) {
    ucp_worker_progress(worker_);
    ReapGroups();
  }
  ReapGroups();
  for (void* r : closing_) ucp_request_free(r);
  closing_.clear();
  for (auto& [addr, m] : local_) {
    if (!m.allocated) ucp_mem_unmap(context_, m.memh);
  }
  local_.clear();
  for (auto& [addr, a] : allocated_) ucp_mem_unmap(context_, a.memh);
  allocated_.clear();
  // A group whose requests never called back (a close that did not finish in time) is
  // leaked on purpose: UCX may still call back into it while the worker is destroyed. Its
  // slices have completed above.
  for (auto& g : groups_) {
    if (g->outstanding > 0) (void)g.release();
  }
  groups_.clear();
}

void UcxWorker::StartGroup(Peer& peer, std::vector<Slice>& slices, Deadline deadline) {
  if (slices.empty()) return;
  if (deadline.Expired()) {
    for (Slice& s : slices) {
      s.done(
          DeadlineExceededError("ucx: submission to " + peer.name + " expired before it started"));
      counters_.slices_failed.fetch_add(1);
    }
    return;
  }
  auto conn = ConnFor(peer);
  if (!conn.ok()) {
    for (Slice& s : slices) s.done(conn.status());
    counters_.slices_failed.fetch_add(slices.size());
    return;
  }
  Conn* c = *conn;
  auto owned = std::make_unique<Group>();
  Group* g = owned.get();
  g->slices = std::move(slices);
  g->completed.assign(g->slices.size(), 0);
  g->left = g->slices.size();
  g->deadline = deadline;
  g->peer = peer.name;
  g->conn = c;
  groups_.push_back(std::move(owned));
  ++unfinished_groups_;
  c->groups.insert(g);
  for (size_t i = 0; i < g->slices.size() && g->conn != nullptr; ++i) PostSlice(g, i);
  if (!g->writes.empty() && g->conn != nullptr) {
    auto* op = new Op{this, g, kFlush};
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.send = &UcxWorker::OnOpComplete;
    p.user_data = op;
    ucs_status_ptr_t r = ucp_ep_flush_nbx(c->ep, &p);
    if (UCS_PTR_IS_PTR(r)) {
      ++g->outstanding;
    } else {
      delete op;
      Status s = UCS_PTR_STATUS(r) == UCS_OK
                     ? OkStatus()
                     : UnavailableError("ucx: flush to " + peer.name +
                                        " failed: " + UcsError(UCS_PTR_STATUS(r)));
      for (size_t i : g->writes) Complete(g, i, s);
    }
  }
}

Result<UcxWorker::Conn*> UcxWorker::ConnFor(const Peer& peer) {
  auto it = conns_.find(peer.key);
  if (it != conns_.end()) {
    Conn* c = it->second.get();
    if (c->worker_address != peer.info->worker_address) {
      // The process behind the name restarted its worker: a new endpoint.
      FailConn(c->id, UnavailableError("ucx: peer " + peer.name + " restarted"));
    } else {
      if (c->info != peer.info) {  // the peer's buffers changed
        if (Status s = UnpackRkeys(c, peer); !s.ok()) {
          refuse_(peer, s);
          FailConn(c->id, s);
          return s;
        }
      }
      return c;
    }
  }
  auto conn = std::make_unique<Conn>();
  Conn* c = conn.get();
  c->id = next_conn_id_++;
  c->owner = this;
  c->key = peer.key;
  c->name = peer.name;
  c->worker_address = peer.info->worker_address;
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                  UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep.address = reinterpret_cast<const ucp_address_t*>(c->worker_address.data());
  ep.err_mode = peer_errors_ ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  ep.err_handler.cb = &UcxWorker::OnEndpointError;
  ep.err_handler.arg = c;
  ucs_status_t st = ucp_ep_create(worker_, &ep, &c->ep);
  if (st != UCS_OK) {
    Status s = UnavailableError(
        fmt::format("ucx: cannot create an endpoint to {} ({}): no common transport?", peer.name,
                    UcsError(st)));
    refuse_(peer, s);
    return s;
  }
  counters_.endpoints_created.fetch_add(1);
  conns_[peer.key] = std::move(conn);
  if (Status s = UnpackRkeys(c, peer); !s.ok()) {
    refuse_(peer, s);
    FailConn(c->id, s);
    return s;
  }
  return c;
}

Status UcxWorker::UnpackRkeys(Conn* c, const Peer& peer) {
  std::vector<ucp_rkey_h> rkeys;
  rkeys.reserve(peer.info->buffers.size());
  for (const UcxPeerInfo::Buffer& b : peer.info->buffers) {
    ucp_rkey_h rkey = nullptr;
    ucs_status_t st = ucp_ep_rkey_unpack(c->ep, b.rkey.data(), &rkey);
    if (st != UCS_OK) {
      DestroyRkeys(rkeys);
      return UnavailableError(fmt::format("ucx: cannot unpack the rkey of {}'s buffer {:#x}: {}",
                                          peer.name, b.addr, UcsError(st)));
    }
    rkeys.push_back(rkey);
  }
  if (c->groups.empty()) {
    DestroyRkeys(c->rkeys);
    DestroyRkeys(c->old_rkeys);
  } else {
    c->old_rkeys.insert(c->old_rkeys.end(), c->rkeys.begin(), c->rkeys.end());
  }
  c->rkeys = std::move(rkeys);
  c->info = peer.info;
  c->version = peer.version;
  return OkStatus();
}

void UcxWorker::DestroyRkeys(std::vector<ucp_rkey_h>& rkeys) {
  for (ucp_rkey_h r : rkeys) ucp_rkey_destroy(r);
  rkeys.clear();
}

void UcxWorker::PostSlice(Group* g, size_t i) {
  Slice& s = g->slices[i];
  if (s.length == 0) {
    Complete(g, i, OkStatus());
    return;
  }
  Conn* c = g->conn;
  const UcxPeerInfo::Buffer* b = c->info->Find(s.remote, s.length);
  if (b == nullptr) {
    Complete(g, i,
             PermissionDeniedError(
                 fmt::format("ucx: range {:#x}+{} is not inside one buffer that {} mapped for ucx",
                             s.remote, s.length, g->peer)));
    return;
  }
  ucp_rkey_h rkey = c->rkeys[static_cast<size_t>(b - c->info->buffers.data())];
  auto* op = new Op{this, g, i};
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = &UcxWorker::OnOpComplete;
  p.user_data = op;
  const bool write = s.op == TransferOp::kWrite;
  ucs_status_ptr_t r = write ? ucp_put_nbx(c->ep, s.local, s.length, s.remote, rkey, &p)
                             : ucp_get_nbx(c->ep, s.local, s.length, s.remote, rkey, &p);
  if (UCS_PTR_IS_PTR(r)) {
    ++g->outstanding;
    if (write) g->writes.push_back(i);
    return;
  }
  delete op;
  ucs_status_t st = UCS_PTR_STATUS(r);
  if (st != UCS_OK) {
    Complete(g, i,
             UnavailableError(fmt::format("ucx: {} of {} bytes at {:#x} on {} failed: {}",
                                          write ? "put" : "get", s.length, s.remote, g->peer,
                                          UcsError(st))));
  } else if (write) {
    g->writes.push_back(i);  // locally complete; remotely once the flush completes
  } else {
    Complete(g, i, OkStatus());
  }
}

void UcxWorker::Complete(Group* g, size_t i, const Status& status) {
  if (g->completed[i]) return;
  g->completed[i] = 1;
  const Status& s = g->override_status.ok() ? status : g->override_status;
  Slice& slice = g->slices[i];
  if (s.ok()) {
    counters_.slices_done.fetch_add(1);
    (slice.op == TransferOp::kWrite ? counters_.bytes_written : counters_.bytes_read)
        .fetch_add(slice.length);
  } else {
    counters_.slices_failed.fetch_add(1);
  }
  slice.done(s);
  if (--g->left > 0) return;
  --unfinished_groups_;
  if (g->conn != nullptr) {
    g->conn->groups.erase(g);
    g->conn = nullptr;
  }
}

void UcxWorker::OnOpComplete(void* request, ucs_status_t status, void* user_data) {
  auto* op = static_cast<Op*>(user_data);
  op->owner->OpDone(op, status);
  delete op;
  ucp_request_free(request);
}

void UcxWorker::OpDone(Op* op, ucs_status_t status) {
  Group* g = op->group;
  --g->outstanding;
  Status s = status == UCS_OK
                 ? OkStatus()
                 : UnavailableError(fmt::format("ucx: {} to {} failed: {}",
                                                op->index == kFlush ? "flush" : "request", g->peer,
                                                UcsError(status)));
  if (op->index == kFlush) {
    for (size_t i : g->writes) Complete(g, i, s);
  } else if (!s.ok() || g->slices[op->index].op == TransferOp::kRead) {
    Complete(g, op->index, s);
  }
}

void UcxWorker::OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* c = static_cast<Conn*>(arg);
  FERRY_LOG_WARN("ucx: endpoint to {} failed: {}", c->name, UcsError(status));
  c->owner->counters_.endpoint_errors.fetch_add(1);
  c->owner->failed_conns_.push_back(c->id);  // handled after progress returns
}

void UcxWorker::FailConn(uint64_t conn_id, const Status& why) {
  auto it = std::find_if(conns_.begin(), conns_.end(),
                         [&](const auto& e) { return e.second->id == conn_id; });
  if (it == conns_.end()) return;  // already closed
  std::unique_ptr<Conn> c = std::move(it->second);
  conns_.erase(it);
  std::vector<Group*> groups(c->groups.begin(), c->groups.end());
  for (Group* g : groups) {
    g->override_status = g->deadline.Expired()
                             ? DeadlineExceededError(fmt::format(
                                   "ucx: submission to {} missed its deadline", c->name))
                             : why;
  }
  // Close first: once the close has completed UCX no longer touches the slices' memory.
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t r = ucp_ep_close_nbx(c->ep, &p);
  if (UCS_PTR_IS_PTR(r)) {
    auto until = SteadyClock::now() + kCloseWait;
    while (ucp_request_check_status(r) == UCS_INPROGRESS && SteadyClock::now() < until) {
      ucp_worker_progress(worker_);
    }
    if (ucp_request_check_status(r) == UCS_INPROGRESS) {
      FERRY_LOG_WARN("ucx: closing the endpoint to {} takes longer than {} ms", c->name,
                     kCloseWait.count());
      closing_.push_back(r);
    } else {
      ucp_request_free(r);
    }
  }
  for (Group* g : groups) {
    g->conn = nullptr;
    for (size_t i = 0; i < g->slices.size(); ++i) Complete(g, i, g->override_status);
  }
  DestroyRkeys(c->rkeys);
  DestroyRkeys(c->old_rkeys);
  // Requests of the closed endpoint have completed (cancelled) or will, never touching c.
}

void UcxWorker::SweepDeadlines() {
  std::vector<uint64_t> expired;
  for (auto& g : groups_) {
    if (g->left == 0 || !g->deadline.Expired()) continue;
    if (g->conn != nullptr && g->outstanding > 0) {
      expired.push_back(g->conn->id);
    } else {
      for (size_t i = 0; i < g->slices.size(); ++i) {
        Complete(g.get(), i,
                 DeadlineExceededError("ucx: submission to " + g->peer + " missed its deadline"));
      }
    }
  }
  std::sort(expired.begin(), expired.end());
  expired.erase(std::unique(expired.begin(), expired.end()), expired.end());
  for (uint64_t id : expired) {
    counters_.deadline_closes.fetch_add(1);
    FailConn(id, UnavailableError("ucx: endpoint closed after another submission on it missed "
                                  "its deadline; retry"));
  }
  for (auto it = closing_.begin(); it != closing_.end();) {
    if (ucp_request_check_status(*it) != UCS_INPROGRESS) {
      ucp_request_free(*it);
      it = closing_.erase(it);
    } else {
      ++it;
    }
  }
}

void UcxWorker::ReapGroups() {
  groups_.remove_if(
      [](const std::unique_ptr<Group>& g) { return g->left == 0 && g->outstanding == 0; });
}

Result<std::string> UcxWorker::Remap(const std::vector<BufferDescriptor>& buffers) {
  std::map<uint64_t, uint64_t> wanted;  // addr -> length
  for (const BufferDescriptor& b : buffers) {
    if (b.remote_accessible && b.length > 0) wanted[b.addr] = b.length;
  }
  // Unmap first what is gone (or changed size): its memory may be freed once we return.
  for (auto it = local_.begin(); it != local_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second.length) {
      ++it;
      continue;
    }
    if (!it->second.allocated) {
      ucs_status_t st = ucp_mem_unmap(context_, it->second.memh);
      if (st != UCS_OK) FERRY_LOG_WARN("ucx: unmapping {:#x} failed: {}", it->first, UcsError(st));
    }
    it = local_.erase(it);
  }
  for (const auto& [addr, length] : wanted) {
    if (local_.count(addr) > 0) continue;
    if (local_.size() >= UcxPeerInfo::kMaxBuffers) {
      FERRY_LOG_WARN("ucx: more than {} registered buffers; {:#x} and later are not mapped",
                     UcxPeerInfo::kMaxBuffers, addr);
      break;
    }
    LocalMap m;
    m.length = length;
    ucs_status_t st = UCS_OK;
    auto own = allocated_.find(addr);
    if (own != allocated_.end() && length <= own->second.length) {
      m.memh = own->second.memh;  // UCX's own memory: its handle reaches it best
      m.allocated = true;
    } else {
      ucp_mem_map_params_t mp{};
      mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
      mp.address = reinterpret_cast<void*>(addr);
      mp.length = length;
      st = ucp_mem_map(context_, &mp, &m.memh);
      if (st != UCS_OK) {
        FERRY_LOG_WARN("ucx: cannot map buffer {:#x}+{} ({}); peers reach it over other transports",
                       addr, length, UcsError(st));
        continue;
      }
    }
    void* packed = nullptr;
    size_t packed_len = 0;
    st = ucp_rkey_pack(context_, m.memh, &packed, &packed_len);
    if (st != UCS_OK || packed_len > UcxPeerInfo::kMaxRkeyBytes) {
      FERRY_LOG_WARN("ucx: cannot pack the rkey of buffer {:#x} ({}, {} bytes)", addr, UcsError(st),
                     packed_len);
      if (st == UCS_OK) ucp_rkey_buffer_release(packed);
      if (!m.allocated) ucp_mem_unmap(context_, m.memh);
      continue;
    }
    m.rkey.assign(static_cast<const char*>(packed), packed_len);
    ucp_rkey_buffer_release(packed);
    local_.emplace(addr, std::move(m));
  }
  UcxPeerInfo info;
  info.worker_address = address_;
  for (const auto& [addr, m] : local_) info.buffers.push_back({addr, m.length, m.rkey});
  std::string json = info.ToJson();
  while (json.size() > UcxPeerInfo::kMaxJsonBytes && !info.buffers.empty()) {
    info.buffers.pop_back();  // rare: thousands of buffers with large rkeys
    json = info.ToJson();
  }
  return json;
}

}  // namespace ferry::transfer::ucx
