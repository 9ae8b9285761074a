#include "transfer/shm/shm_transport.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "common/log.h"
#include "common/mutex.h"
#include "transfer/shm/internal/shm_handshake.h"

namespace ferry::transfer::shm {
namespace {

// How long an idle worker polls the queue before it sleeps (a wake-up costs ~35 us here).
constexpr auto kIdleSpin = std::chrono::microseconds(50);

std::string Trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// The handshake with a same-host peer runs on the submitting thread; a peer that does not
// answer within this long is given up (the engine then uses tcp).
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(1000);

}  // namespace

std::string ReadHostId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return Trim(id);
}

Result<std::unique_ptr<ShmTransport>> ShmTransport::Create(const TransportOptions& options,
                                                           TransportHost* host, CmaCalls calls) {
  int threads = 2;
  for (const auto& [k, v] : options.extra) {
    if (k != "shm_threads") continue;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > 16) {
      return InvalidArgumentError("shm_threads must be an integer in 1..16, got '" + v + "'");
    }
    threads = static_cast<int>(n);
  }
  std::string host_id = ReadHostId();
  if (host_id.empty() && host != nullptr) host_id = host->LocalDescriptor().host_id;
  if (host_id.empty()) {
    return UnimplementedError("shm transport: cannot read /proc/sys/kernel/random/boot_id");
  }
  if (calls.read == nullptr || calls.write == nullptr) {
    return InvalidArgumentError("shm transport: CmaCalls must name both syscalls");
  }
  auto pool = std::make_unique<SharedMemoryPool>();
  std::unique_ptr<ShmSessionServer> server;
  if (host != nullptr) {
    auto created = ShmSessionServer::Create(host, options.secret, pool.get());
    if (!created.ok()) return created.status().WithContext("shm transport");
    server = std::move(*created);
  }
  return std::unique_ptr<ShmTransport>(new ShmTransport(std::move(host_id), threads, calls,
                                                        options.secret, host, std::move(pool),
                                                        std::move(server)));
}

ShmTransport::ShmTransport(std::string host_id, int threads, CmaCalls calls, std::string secret,
                           TransportHost* host, std::unique_ptr<SharedMemoryPool> pool,
                           std::unique_ptr<ShmSessionServer> server)
    : host_id_(std::move(host_id)),
      calls_(calls),
      secret_(std::move(secret)),
      host_(host),
      pool_(std::move(pool)),
      server_(std::move(server)) {
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ShmTransport::~ShmTransport() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) t.join();
  std::deque<Job> left;
  {
    MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (auto& job : left) {
    for (Slice& s : job.slices) s.done(AbortedError("shm transport shut down"));
  }
}

bool ShmTransport::CanReach(const SegmentDescriptor& peer) const {
  if (peer.pid <= 0 || peer.host_id.empty() || peer.host_id != host_id_) return false;
  if (std::find(peer.transports.begin(), peer.transports.end(), "shm") == peer.transports.end()) {
    return false;
  }
  auto socket = peer.transport_info.find("shm");
  if (socket == peer.transport_info.end() || !internal::IsEngineSocketPath(socket->second)) {
    return false;
  }
  return !IsRefused(peer.pid);
}

void ShmTransport::DescribeLocal(SegmentDescriptor* descriptor) const {
  if (!server_) return;  // initiator only: nobody can copy into this process
  auto& t = descriptor->transports;
  if (std::find(t.begin(), t.end(), "shm") == t.end()) t.push_back("shm");
  descriptor->transport_info["shm"] = server_->socket_path();
}

void ShmTransport::LocalMemoryChanged() {
  if (server_) server_->DescriptorChanged();
}

Result<void*> ShmTransport::AllocateMemory(size_t length) {
  if (server_ == nullptr)
    return UnavailableError("shm: an initiator-only transport shares nothing");
  return pool_->Allocate(length);
}

Status ShmTransport::FreeMemory(void* addr) {
  if (host_ != nullptr) {
    for (const BufferDescriptor& b : host_->LocalDescriptor().buffers) {
      if (b.addr == reinterpret_cast<uint64_t>(addr)) {
        return FailedPreconditionError(fmt::format("shm: {} is still a registered buffer", addr));
      }
    }
  }
  return pool_->Free(addr);
}

Result<std::shared_ptr<ShmSession>> ShmTransport::SessionFor(const SegmentDescriptor& peer,
                                                             Deadline deadline) {
  MutexLock lock(&sessions_mu_);
  auto it = sessions_.find(peer.name);
  if (it != sessions_.end()) {
    // A descriptor naming another process or socket than the session's is a peer that
    // restarted (or a lie): open a new session and let the kernel say who is there.
    auto path = peer.transport_info.find("shm");
    if (it->second->pid() == peer.pid && path != peer.transport_info.end() &&
        path->second == it->second->path()) {
      return it->second;
    }
    sessions_.erase(it);
  }
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<ShmSession> session,
      ShmSession::Open(peer, secret_, Deadline::Min(deadline, Deadline::In(kHandshakeTimeout))));
  std::shared_ptr<ShmSession> shared = std::move(session);
  sessions_[peer.name] = shared;
  return shared;
}

void ShmTransport::DropSession(const std::string& peer_name) {
  MutexLock lock(&sessions_mu_);
  sessions_.erase(peer_name);
}

bool ShmTransport::IsRefused(int64_t pid) const {
  MutexLock lock(&refused_mu_);
  return refused_.count(pid) > 0;
}

void ShmTransport::ForgetPeer(const std::string& peer_name) {
  DropSession(peer_name);
  MutexLock lock(&refused_mu_);
  for (auto it = refused_.begin(); it != refused_.end();) {
    it = it->second == peer_name ? refused_.erase(it) : std::next(it);
  }
}

Result<std::shared_ptr<ShmSession>> ShmTransport::OpenSession(const SegmentDescriptor& peer,
                                                              Deadline deadline) {
  auto session = SessionFor(peer, deadline);
  if (!session.ok() && session.status().code() == StatusCode::kUnimplemented) {
    // The handshake failed (no socket, another process or secret, no answer in time): a
    // refusal of this peer, remembered until ForgetPeer, so CanReach turns false.
    MutexLock lock(&refused_mu_);
    refused_.emplace(peer.pid, peer.name);
  }
  return session;
}

void ShmTransport::Warm(const SegmentDescriptor& peer, Deadline deadline) {
  OpenSession(peer, deadline).status().IgnoreError();
}

void ShmTransport::Submit(const SegmentDescriptor& peer, std::span<Slice> slices,
                          Deadline deadline) {
  auto session = OpenSession(peer, deadline);
  Status live = session.ok() ? (*session)->Sync() : session.status();
  if (!live.ok()) {
    if (session.ok()) DropSession(peer.name);  // gone: the next submission looks afresh
    for (Slice& s : slices) s.done(live);
    return;
  }
  // Only the peer process's own buffers, as it last told us.
  ShmSession& ses = **session;
  ShmSession::View view = ses.view();
  auto covered = [&](const Slice& sl) {
    return sl.length == 0 || view.Covers(sl.remote, sl.length);
  };
  if (!std::all_of(slices.begin(), slices.end(), covered)) {
    // A buffer the peer registered a moment ago may not have been pushed yet: ask once.
    if (Status r = ses.Refresh(Deadline::Min(deadline, Deadline::In(kHandshakeTimeout))); !r.ok()) {
      DropSession(peer.name);
      for (Slice& sl : slices) sl.done(r);
      return;
    }
    view = ses.view();
  }
  std::vector<Slice> accepted;
  accepted.reserve(slices.size());
  for (Slice& sl : slices) {
    if (covered(sl)) {
      accepted.push_back(std::move(sl));
    } else {
      sl.done(PermissionDeniedError(
          fmt::format("shm: range {:#x}+{} is not in a buffer that pid {} registered for peers",
                      sl.remote, sl.length, ses.pid())));
    }
  }
  size_t total = 0;
  for (const Slice& s : accepted) total += s.length;
  const pid_t pid = ses.pid();
  const std::shared_ptr<ShmSession>& sp = *session;
  if (total <= kInlineBytes) {
    Job job{pid, peer.name, sp, std::move(accepted), deadline};
    Run(job);
    return;
  }
  // Small slices go in groups (one syscall each). A large slice is cut into one piece per
  // worker so that every core copies at once (one thread of cross-memory attach is bound
  // by a single core's copy speed).
  // Into shared buffers (memcpy, no syscall) the groups are one share per thread, the
  // caller included: fewer hand-offs, and no more threads than that copying at once.
  std::vector<Job> jobs;
  const size_t group_limit =
      view.has_mappings() ? std::max(kGroupBytes, total / (workers_.size() + 1) + 1) : kGroupBytes;
  Job group{pid, peer.name, sp, {}, deadline};
  size_t group_bytes = 0;
  auto close_group = [&] {
    if (group.slices.empty()) return;
    jobs.push_back(std::move(group));
    group = Job{pid, peer.name, sp, {}, deadline};
    group_bytes = 0;
  };
  for (Slice& s : accepted) {
    if (s.length >= kSplitBytes) {
      std::vector<Slice> pieces;
      if (workers_.size() < 2) {
        pieces.push_back(std::move(s));
      } else {
        SplitSlice(std::move(s), workers_.size(), &pieces);
      }
      for (Slice& p : pieces) {
        jobs.push_back(Job{pid, peer.name, sp, {}, deadline});
        jobs.back().slices.push_back(std::move(p));
      }
      continue;
    }
    if (group_bytes + s.length > group_limit || group.slices.size() == kCmaMaxRanges) {
      close_group();
    }
    group_bytes += s.length;
    group.slices.push_back(std::move(s));
  }
  close_group();
  // The caller copies the last small-slice group itself while the workers take the rest.
  Job mine;
  if (jobs.size() > 1 && jobs.back().slices.size() > 1) {
    mine = std::move(jobs.back());
    jobs.pop_back();
  }
  bool wake = false;
  bool stopped = false;
  {
    MutexLock lock(&mu_);
    stopped = stop_;
    if (!stopped) {
      for (Job& j : jobs) queue_.push_back(std::move(j));
      queued_.store(queue_.size(), std::memory_order_release);
      wake = sleepers_ > 0;
    }
  }
  if (stopped) {
    for (Job& j : jobs) {
      for (Slice& s : j.slices) s.done(AbortedError("shm transport shut down"));
    }
  } else if (wake) {
    cv_.SignalAll();
  }
  if (!mine.slices.empty()) Run(mine);
}

void ShmTransport::SplitSlice(Slice slice, size_t parts, std::vector<Slice>* out) {
  // The pieces share one completion: the slice is done when every piece is, and fails with
  // the first piece's error.
  struct Shared {
    std::atomic<size_t> left;
    Mutex mu;
    Status first_error FERRY_GUARDED_BY(mu);
    std::function<void(const Status&)> done;
  };
  auto shared = std::make_shared<Shared>();
  shared->left = parts;
  shared->done = std::move(slice.done);
  // Pieces are multiples of 64 bytes so that they start on cache lines where the slice does.
  const size_t piece = ((slice.length / parts) + 63) & ~size_t{63};
  size_t offset = 0;
  for (size_t i = 0; i < parts && offset < slice.length; ++i) {
    const size_t len = std::min(piece, slice.length - offset);
    Slice p;
    p.op = slice.op;
    p.local = slice.local + offset;
    p.remote = slice.remote + offset;
    p.length = len;
    offset += len;
    const bool last = offset >= slice.length;
    if (last) shared->left -= parts - (i + 1);  // fewer pieces than planned
    p.done = [shared](const Status& st) {
      if (!st.ok()) {
        MutexLock lock(&shared->mu);
        if (shared->first_error.ok()) shared->first_error = st;
      }
      if (shared->left.fetch_sub(1) == 1) {
        Status result;
        {
          MutexLock lock(&shared->mu);
          result = shared->first_error;
        }
        shared->done(result);
      }
    };
    out->push_back(std::move(p));
    if (last) break;
  }
}

void ShmTransport::CopyIntoMappings(const ShmSession::View& view, std::vector<Slice>* slices) {
  if (!view.has_mappings()) return;
  // All copies first, then the completions: a completion's atomics would otherwise wait
  // for each copy's stores to drain before the next copy starts.
  std::vector<Slice> copied;
  size_t kept = 0;
  for (size_t i = 0; i < slices->size(); ++i) {
    Slice& sl = (*slices)[i];
    const PeerMapping* m = sl.length == 0 ? nullptr : view.MappingFor(sl.remote, sl.length);
    if (m == nullptr) {
      if (kept != i) (*slices)[kept] = std::move(sl);
      ++kept;
      continue;
    }
    if (sl.op == TransferOp::kWrite) {
      std::memcpy(m->At(sl.remote), sl.local, sl.length);
    } else {
      std::memcpy(sl.local, m->At(sl.remote), sl.length);
    }
    copied.push_back(std::move(sl));
  }
  for (Slice& sl : copied) sl.done(OkStatus());
  slices->resize(kept);
}

void ShmTransport::Run(Job& job) {
  auto remember = [&](const Status& s) {
    if (s.code() != StatusCode::kUnimplemented) return;
    MutexLock lock(&refused_mu_);
    if (refused_.emplace(job.pid, job.peer_name).second) FERRY_LOG_WARN("shm: {}", s.message());
  };
  Status before;
  if (job.deadline.Expired()) {
    before = DeadlineExceededError("shm slice to pid " + std::to_string(job.pid) +
                                   " expired before it started");
  } else if (IsRefused(job.pid)) {
    before = UnimplementedError("cross-memory attach to pid " + std::to_string(job.pid) +
                                " was refused by the kernel earlier; use tcp");
  }
  if (!before.ok()) {
    for (Slice& s : job.slices) s.done(before);
    return;
  }
  // Slices into the peer's shared buffers are plain copies; the rest go to the kernel.
  if (job.session != nullptr) {
    CopyIntoMappings(job.session->view(), &job.slices);
    if (job.slices.empty()) return;
  }
  if (job.slices.size() == 1) {
    Slice& sl = job.slices[0];
    Status s = CmaCopy(calls_, job.pid, sl.op, sl.local, sl.remote, sl.length, job.deadline);
    remember(s);
    sl.done(s);
    return;
  }
  // Runs of slices in one direction go to the kernel together.
  for (size_t first = 0; first < job.slices.size();) {
    const TransferOp op = job.slices[first].op;
    size_t end = first;
    std::vector<CmaRange> ranges;
    while (end < job.slices.size() && job.slices[end].op == op) {
      const Slice& sl = job.slices[end++];
      ranges.push_back(CmaRange{sl.local, sl.remote, sl.length});
    }
    CmaCopyV(calls_, job.pid, op, ranges, job.deadline, [&](size_t i, const Status& s) {
      remember(s);
      job.slices[first + i].done(s);
    });
    first = end;
  }
}

void ShmTransport::WorkerLoop() {
  MutexLock lock(&mu_);
  while (true) {
    if (stop_) return;  // the destructor fails what is still queued
    if (!queue_.empty()) {
      Job job = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_release);
      lock.Unlock();
      Run(job);
      lock.Lock();
      continue;
    }
    // Poll briefly without the lock: the next slice of a stream usually comes soon.
    lock.Unlock();
    auto spin_until = SteadyClock::now() + kIdleSpin;
    while (queued_.load(std::memory_order_acquire) == 0 && SteadyClock::now() < spin_until) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    lock.Lock();
    if (!queue_.empty() || stop_) continue;
    ++sleepers_;
    cv_.Wait(&mu_, [this]() FERRY_REQUIRES(mu_) { return !queue_.empty() || stop_; });
    --sleepers_;
  }
}

Result<std::unique_ptr<Transport>> CreateShmTransport(const TransportOptions& options,
                                                      TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(auto t, ShmTransport::Create(options, host));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ferry::transfer::shm
