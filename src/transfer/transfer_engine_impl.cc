#include "transfer/transfer_engine_impl.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/host_port.h"
#include "common/json_limits.h"
#include "common/log.h"
#include "common/mutex.h"
#include "transfer/tcp/wire.h"

namespace ferry {

TransferEngine::~TransferEngine() = default;

Result<std::unique_ptr<TransferEngine>> TransferEngine::Create(
    const TransferEngineOptions& options) {
  return transfer::TransferEngineImpl::Create(options);
}

namespace transfer {
namespace {

constexpr const char* kP2P = "P2PHANDSHAKE";

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseParams(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError("transport_params item '" + item + "' is not key=value");
    }
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

// What is stored in a metadata service. With a secret the descriptor travels inside a
// signed envelope, {"ferry_signed_descriptor": <descriptor JSON>, "mac": <hex>}, so that
// whoever can write to the store (an etcd user, anyone on an open metadata server) cannot
// substitute another descriptor: readers with the secret accept only a valid MAC.
std::string StoredDescriptor(const SegmentDescriptor& d, const std::string& secret) {
  std::string json = d.ToJson();
  if (secret.empty()) return json;
  nlohmann::json env = {
      {"ferry_signed_descriptor", json},
      {"mac", crypto::HexEncode(crypto::HmacSha256(secret, "ferry-segment-v1\n" + json))}};
  return env.dump();
}

Result<SegmentDescriptor> ParseStoredDescriptor(const std::string& name, const std::string& text,
                                                const std::string& secret) {
  auto env = ParseJson(text, {.max_bytes = 16u << 20, .max_depth = 4});
  const bool signed_form = env.ok() && env->is_object() &&
                           env->contains("ferry_signed_descriptor") &&
                           (*env)["ferry_signed_descriptor"].is_string() && env->contains("mac") &&
                           (*env)["mac"].is_string();
  if (secret.empty()) {
    return SegmentDescriptor::FromJson(
        signed_form ? (*env)["ferry_signed_descriptor"].get<std::string>() : text);
  }
  if (!signed_form) {
    return PermissionDeniedError("the stored descriptor of segment '" + name +
                                 "' is not signed; its engine runs without this deployment's "
                                 "secret (or someone else wrote it)");
  }
  const std::string json = (*env)["ferry_signed_descriptor"].get<std::string>();
  if (!crypto::ConstantTimeEqual(
          crypto::HexEncode(crypto::HmacSha256(secret, "ferry-segment-v1\n" + json)),
          (*env)["mac"].get<std::string>())) {
    return PermissionDeniedError("the stored descriptor of segment '" + name +
                                 "' has a bad signature (another secret, or forged)");
  }
  FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d, SegmentDescriptor::FromJson(json));
  if (d.name != name) {
    return PermissionDeniedError("the stored descriptor under '" + name + "' is segment '" +
                                 d.name + "'s");
  }
  return d;
}

}  // namespace

Result<std::unique_ptr<TransferEngine>> TransferEngineImpl::Create(
    const TransferEngineOptions& options) {
  InitLoggingFromEnv();
  std::unique_ptr<TransferEngineImpl> e(new TransferEngineImpl(options));
  FERRY_RETURN_IF_ERROR(e->Init());
  return std::unique_ptr<TransferEngine>(std::move(e));
}

TransferEngineImpl::TransferEngineImpl(const TransferEngineOptions& options) : options_(options) {}

Status TransferEngineImpl::Init() {
  if (options_.connections_per_peer < 1 || options_.connections_per_peer > 64) {
    return InvalidArgumentError("connections_per_peer must be in 1..64");
  }
  if (options_.slice_size == 0 || options_.slice_size > tcp::kMaxDataPayload) {
    return InvalidArgumentError("slice_size must be in 1 byte .. 1 GiB");
  }
  if (options_.default_timeout.count() <= 0 || options_.connect_timeout.count() <= 0) {
    return InvalidArgumentError("default_timeout and connect_timeout must be positive");
  }
  if (options_.max_pending_notifications == 0 || options_.max_pending_notification_bytes == 0) {
    return InvalidArgumentError(
        "max_pending_notifications and max_pending_notification_bytes must be at least 1");
  }
  FERRY_ASSIGN_OR_RETURN(HostPort bind, ParseHostPort(options_.local_name));
  FERRY_ASSIGN_OR_RETURN(auto extra, ParseParams(options_.transport_params));
  pid_ = ::getpid();
  host_id_ = ReadBootId();

  TransportOptions topts;
  topts.bind_host = bind.host;
  topts.port = bind.port;
  topts.secret = options_.secret;
  topts.connections_per_peer = options_.connections_per_peer;
  topts.slice_size = options_.slice_size;
  topts.connect_timeout = options_.connect_timeout;
  topts.device_name = options_.device_name;
  topts.extra = extra;
  FERRY_ASSIGN_OR_RETURN(control_, ControlPlane::Create(topts, this));
  rpc_port_ = control_->port();

  advertised_host_ = bind.host;
  local_name_ = HostPort{bind.host, rpc_port_}.ToString();
  if (!options_.advertised_name.empty()) {
    FERRY_ASSIGN_OR_RETURN(HostPort adv, ParseHostPort(options_.advertised_name, rpc_port_));
    if (adv.port == 0) adv.port = rpc_port_;
    advertised_host_ = adv.host;
    local_name_ = adv.ToString();
  }

  FERRY_RETURN_IF_ERROR(CreateTransports(topts));
  // From here on the server answers GET_DESCRIPTOR with the identity set above; the
  // transport pointers are never read by it (they are reset while it still runs).
  identity_ready_.store(true, std::memory_order_release);

  worker_ = std::thread([this] { WorkerLoop(); });

  if (!options_.metadata.empty() && options_.metadata != kP2P) {
    auto store = metadata::MetadataStore::Create(options_.metadata, options_.secret);
    if (!store.ok()) return store.status().WithContext("metadata '" + options_.metadata + "'");
    store_ = std::move(*store);
    Status s = store_->Put(metadata::SegmentKey(local_name_),
                           StoredDescriptor(LocalDescriptor(), options_.secret),
                           Deadline::In(options_.connect_timeout));
    if (!s.ok()) {
      return UnavailableError("cannot publish the segment to " + store_->Describe() + ": " +
                              s.ToString());
    }
  }
  FERRY_LOG_DEBUG("transfer engine {} serving on port {}", local_name_, rpc_port_);
  return OkStatus();
}

Status TransferEngineImpl::CreateTransports(const TransportOptions& base) {
  const std::string& mode = options_.transport;
  auto registered = [](const std::string& name) {
    auto names = TransportRegistry::Names();
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  // Optional transports are skipped with a warning when they cannot start here (shm where
  // the host id is unreadable, ucx where the host has no RDMA NIC); a named one must start.
  std::vector<std::string> optional;
  std::string required;
  TransportOptions options = base;
  if (mode == "auto") {
    optional = {"shm"};
  } else if (mode == "rdma") {
    optional = {"shm"};
    if (registered("ucx")) {
      optional.push_back("ucx");
      // ucx over the host's RDMA NICs only ("ib": UCX's InfiniBand / RoCE transports),
      // unless the deployment names its own: without RDMA, remote peers are better served
      // by Ferry's tcp than by UCX's.
      bool tls_set = false;
      for (const auto& [k, v] : options.extra) tls_set |= k == "ucx_tls";
      if (!tls_set) options.extra.emplace_back("ucx_tls", "ib");
    } else {
      FERRY_LOG_WARN(
          "transport 'rdma' asked for, but this build of Ferry has no ucx transport (built "
          "without libucx-dev); using shm to same-host peers and tcp otherwise");
    }
  } else if (mode != "tcp") {
    required = mode;
  }
  for (const std::string& name : optional) {
    if (!registered(name)) continue;
    auto t = TransportRegistry::Create(name, options, this);
    if (t.ok()) {
      transports_.push_back(std::move(*t));
    } else {
      FERRY_LOG_WARN("{} transport unavailable, going without it: {}", name, t.status().ToString());
    }
  }
  if (!required.empty()) {
    auto t = TransportRegistry::Create(required, options, this);
    if (!t.ok()) return t.status().WithContext("transport '" + required + "'");
    transports_.push_back(std::move(*t));
  }
  // Last resort for every peer: tcp, which reaches any peer's RPC port.
  FERRY_ASSIGN_OR_RETURN(auto tcp, TransportRegistry::Create("tcp", options, this));
  transports_.push_back(std::move(tcp));
  std::string order;
  for (const auto& t : transports_) order += (order.empty() ? "" : ", ") + std::string(t->name());
  FERRY_LOG_DEBUG("transfer engine: transports in preference order: {}", order);
  return OkStatus();
}

TransferEngineImpl::~TransferEngineImpl() {
  {
    MutexLock lock(&worker_mu_);
    worker_stop_ = true;
  }
  worker_cv_.SignalAll();
  if (worker_.joinable()) worker_.join();
  std::deque<std::function<void(bool)>> left;
  {
    MutexLock lock(&worker_mu_);
    left.swap(jobs_);
  }
  for (auto& job : left) job(true);
  // Transports fail their pending slices with Aborted and join their threads.
  {
    MutexLock lock(&stopping_mu_);
    stopping_ = true;
  }
  transports_.clear();
  control_.reset();
  {
    MutexLock lock(&managed_mu_);
    for (const auto& [addr, m] : managed_) {
      if (m.allocator == nullptr) ::munmap(addr, m.length);
    }
    managed_.clear();
  }
  if (store_) {
    store_->Delete(metadata::SegmentKey(local_name_), Deadline::In(options_.connect_timeout))
        .IgnoreError();
  }
}

void TransferEngineImpl::RunOnWorker(std::function<void(bool)> job) {
  {
    MutexLock lock(&worker_mu_);
    if (!worker_stop_) {
      jobs_.push_back(std::move(job));
      worker_cv_.Signal();
      return;
    }
  }
  job(true);
}

void TransferEngineImpl::WorkerLoop() {
  while (true) {
    std::function<void(bool)> job;
    {
      MutexLock lock(&worker_mu_);
      worker_cv_.Wait(&worker_mu_,
                      [&]() FERRY_REQUIRES(worker_mu_) { return worker_stop_ || !jobs_.empty(); });
      if (worker_stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(false);
  }
}

// ---- memory and descriptors -------------------------------------------------------------

Status TransferEngineImpl::RegisterMemory(std::span<const MemoryRegion> regions) {
  MutexLock lock(&publish_mu_);
  FERRY_RETURN_IF_ERROR(memory_.Add(regions));
  version_.fetch_add(1);
  // Transports first (ucx maps the buffers and packs their rkeys), so that the descriptor
  // published next carries what peers need to reach the new buffers.
  for (const auto& t : transports_) t->LocalMemoryChanged();
  PublishDescriptor();
  return OkStatus();
}

Status TransferEngineImpl::UnregisterMemory(std::span<void* const> addrs) {
  MutexLock lock(&publish_mu_);
  FERRY_RETURN_IF_ERROR(memory_.Remove(addrs));
  version_.fetch_add(1);
  PublishDescriptor();
  // Same-host peers copy without our involvement: tell them before returning, so that
  // their next submission no longer sees the removed buffers.
  for (const auto& t : transports_) t->LocalMemoryChanged();
  return OkStatus();
}

Result<void*> TransferEngineImpl::AllocateManagedBuffer(size_t length) {
  if (length == 0) return InvalidArgumentError("AllocateManagedBuffer: length must be positive");
  void* addr = nullptr;
  Transport* allocator = nullptr;
  for (const auto& t : transports_) {
    if (!t->allocates_memory()) continue;
    auto r = t->AllocateMemory(length);
    if (r.ok()) {
      addr = *r;
      allocator = t.get();
      break;
    }
    FERRY_LOG_WARN(
        "AllocateManagedBuffer: {} could not allocate {} bytes ({}); using ordinary "
        "memory",
        t->name(), length, r.status().message());
  }
  if (allocator == nullptr) {
    // Pages come on first touch (no commit charge up front, as with a memfd).
    addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) {
      return ResourceExhaustedError(fmt::format("AllocateManagedBuffer: cannot map {} bytes: {}",
                                                length, std::strerror(errno)));
    }
  }
  const MemoryRegion region{addr, length, "cpu", true};
  Status s = RegisterMemory({&region, 1});
  if (!s.ok()) {
    if (allocator == nullptr) {
      ::munmap(addr, length);
    } else {
      allocator->FreeMemory(addr).IgnoreError();
    }
    return s;
  }
  MutexLock lock(&managed_mu_);
  managed_[addr] = {length, allocator};
  return addr;
}

Status TransferEngineImpl::FreeManagedBuffer(void* addr) {
  ManagedBuffer m;
  {
    MutexLock lock(&managed_mu_);
    auto it = managed_.find(addr);
    if (it == managed_.end()) {
      return NotFoundError(fmt::format("FreeManagedBuffer: {} is not a managed buffer", addr));
    }
    m = it->second;
    managed_.erase(it);
  }
  Status s = UnregisterMemory({&addr, 1});
  if (!s.ok() && s.code() != StatusCode::kNotFound) return s;  // NotFound: unregistered already
  if (m.allocator == nullptr) {
    ::munmap(addr, m.length);
    return OkStatus();
  }
  return m.allocator->FreeMemory(addr);
}

void TransferEngineImpl::PublishDescriptor() {
  if (!store_) return;
  Status s = store_->Put(metadata::SegmentKey(local_name_),
                         StoredDescriptor(LocalDescriptor(), options_.secret),
                         Deadline::In(options_.connect_timeout));
  if (!s.ok()) FERRY_LOG_WARN("publishing segment {} failed: {}", local_name_, s.ToString());
}

SegmentDescriptor TransferEngineImpl::LocalDescriptor() const {
  SegmentDescriptor d;
  // A peer may ask in the instant between bind and the end of Init: answer empty.
  if (!identity_ready_.load(std::memory_order_acquire)) return d;
  d.name = local_name_;
  d.host = advertised_host_;
  d.rpc_port = rpc_port_;
  d.pid = pid_;
  d.host_id = host_id_;
  d.version = version_.load();
  d.buffers = memory_.Buffers();
  // What peers need to reach each transport, as of now (ucx: the rkeys of the buffers).
  ReaderMutexLock alive(&stopping_mu_);
  if (!stopping_) {
    for (const auto& t : transports_) t->DescribeLocal(&d);
  }
  return d;
}

Status TransferEngineImpl::CheckInboundRange(uint64_t addr, uint64_t len) const {
  return memory_.CheckInboundRange(addr, len);
}

void TransferEngineImpl::DeliverNotification(Notification n) {
  std::deque<Notification> dropped;  // freed outside the lock
  bool first_of_burst = false;
  size_t kept = 0;
  {
    MutexLock lock(&notes_mu_);
    notes_bytes_ += n.from.size() + n.message.size();
    notes_.push_back(std::move(n));
    while (!notes_.empty() && (notes_.size() > options_.max_pending_notifications ||
                               notes_bytes_ > options_.max_pending_notification_bytes)) {
      notes_bytes_ -= notes_.front().from.size() + notes_.front().message.size();
      dropped.push_back(std::move(notes_.front()));
      notes_.pop_front();
    }
    if (!dropped.empty() && !notes_overflowed_) {
      notes_overflowed_ = true;
      first_of_burst = true;
    }
    kept = notes_.size();
  }
  if (dropped.empty()) return;
  counters_.notifications_dropped.fetch_add(dropped.size(), std::memory_order_relaxed);
  if (first_of_burst) {
    FERRY_LOG_WARN(
        "transfer engine {}: {} notifications wait untaken (limits: {} notifications, {} "
        "bytes); dropping the oldest until TakeNotifications is called (counted in "
        "notifications_dropped; raise max_pending_notifications / "
        "max_pending_notification_bytes or take them sooner)",
        local_name_, kept, options_.max_pending_notifications,
        options_.max_pending_notification_bytes);
  }
}

std::vector<Notification> TransferEngineImpl::TakeNotifications() {
  std::deque<Notification> taken;
  {
    MutexLock lock(&notes_mu_);
    taken.swap(notes_);
    notes_bytes_ = 0;
    notes_overflowed_ = false;
  }
  return std::vector<Notification>(std::make_move_iterator(taken.begin()),
                                   std::make_move_iterator(taken.end()));
}

void TransferEngineImpl::CountInbound(TransferOp op, uint64_t bytes) {
  (op == TransferOp::kWrite ? counters_.bytes_received : counters_.bytes_served)
      .fetch_add(bytes, std::memory_order_relaxed);
}

void TransferEngineImpl::CountRejected() {
  counters_.inbound_rejected.fetch_add(1, std::memory_order_relaxed);
}

TransferCounters TransferEngineImpl::counters() const {
  TransferCounters c;
  c.bytes_written = counters_.bytes_written.load();
  c.bytes_read = counters_.bytes_read.load();
  c.bytes_received = counters_.bytes_received.load();
  c.bytes_served = counters_.bytes_served.load();
  c.requests_done = counters_.requests_done.load();
  c.requests_failed = counters_.requests_failed.load();
  c.inbound_rejected = counters_.inbound_rejected.load();
  c.notifications_dropped = counters_.notifications_dropped.load();
  c.transport_fallbacks = counters_.transport_fallbacks.load();
  return c;
}

// ---- segments ---------------------------------------------------------------------------

Result<SegmentDescriptor> TransferEngineImpl::FetchDescriptor(const std::string& name,
                                                              Deadline deadline) {
  if (!store_) return control_->FetchDescriptor(name, deadline);
  auto json = store_->Get(metadata::SegmentKey(name), deadline);
  if (!json.ok()) {
    return Status(json.status().code(), "segment '" + name + "' not found in " +
                                            store_->Describe() + ": " + json.status().message());
  }
  return ParseStoredDescriptor(name, *json, options_.secret);
}

Result<SegmentId> TransferEngineImpl::OpenSegment(const std::string& name) {
  {
    MutexLock lock(&segments_mu_);
    auto it = by_name_.find(name);
    if (it != by_name_.end()) return it->second;
  }
  auto desc = FetchDescriptor(name, Deadline::In(options_.connect_timeout));
  if (!desc.ok()) return desc.status().WithContext("opening segment '" + name + "'");
  MutexLock lock(&segments_mu_);
  auto it = by_name_.find(name);  // another thread may have opened it meanwhile
  if (it != by_name_.end()) return it->second;
  SegmentId id = next_segment_++;
  std::vector<Transport*> route = Route(*desc);
  Transport* first = route.empty() ? nullptr : route.front();
  auto shared = std::make_shared<const SegmentDescriptor>(std::move(*desc));
  segments_[id] = Segment{name, shared, std::move(route)};
  by_name_[name] = id;
  lock.Unlock();
  if (first != nullptr) first->Warm(*shared, Deadline::In(options_.connect_timeout));
  return id;
}

Result<SegmentDescriptor> TransferEngineImpl::RefreshSegment(SegmentId id) {
  std::string name;
  int64_t old_pid = 0;
  {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(id);
    if (it == segments_.end()) return NotFoundError("unknown segment id " + std::to_string(id));
    name = it->second.name;
    old_pid = it->second.desc->pid;
  }
  FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d,
                         FetchDescriptor(name, Deadline::In(options_.connect_timeout)));
  return InstallDescriptor(id, name, old_pid, std::move(d));
}

Result<SegmentDescriptor> TransferEngineImpl::InstallDescriptor(SegmentId id,
                                                                const std::string& name,
                                                                int64_t old_pid,
                                                                SegmentDescriptor d) {
  if (d.pid != old_pid) {  // the peer restarted: its old connections are useless
    control_->ForgetPeer(name);
    for (const auto& t : transports_) t->ForgetPeer(name);
  }
  std::vector<Transport*> route = Route(d);
  MutexLock lock(&segments_mu_);
  auto it = segments_.find(id);
  if (it == segments_.end()) return NotFoundError("segment " + name + " was closed");
  it->second.desc = std::make_shared<const SegmentDescriptor>(d);
  it->second.route = std::move(route);
  return d;
}

Result<std::chrono::microseconds> TransferEngineImpl::Probe(SegmentId id,
                                                            std::chrono::milliseconds timeout) {
  std::shared_ptr<const SegmentDescriptor> cached;
  {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(id);
    if (it == segments_.end()) return NotFoundError("unknown segment id " + std::to_string(id));
    cached = it->second.desc;
  }
  const auto t = timeout.count() > 0 ? timeout : options_.connect_timeout;
  FERRY_ASSIGN_OR_RETURN(ControlPlane::ProbeReply reply, control_->Probe(*cached, Deadline::In(t)));
  if (reply.descriptor.pid != cached->pid || reply.descriptor.version != cached->version) {
    FERRY_RETURN_IF_ERROR(
        InstallDescriptor(id, cached->name, cached->pid, std::move(reply.descriptor)).status());
  }
  return reply.round_trip;
}

Result<SegmentDescriptor> TransferEngineImpl::GetSegmentDescriptor(SegmentId id, bool refresh) {
  if (refresh) return RefreshSegment(id);
  MutexLock lock(&segments_mu_);
  auto it = segments_.find(id);
  if (it == segments_.end()) return NotFoundError("unknown segment id " + std::to_string(id));
  return *it->second.desc;
}

Status TransferEngineImpl::CloseSegment(SegmentId id) {
  std::string name;
  {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(id);
    if (it == segments_.end()) return NotFoundError("unknown segment id " + std::to_string(id));
    name = it->second.name;
    by_name_.erase(name);
    segments_.erase(it);
  }
  control_->ForgetPeer(name);
  for (const auto& t : transports_) t->ForgetPeer(name);
  return OkStatus();
}

std::vector<Transport*> TransferEngineImpl::Route(const SegmentDescriptor& peer) const {
  std::vector<Transport*> route;
  for (const auto& t : transports_) {
    if (t->CanReach(peer)) route.push_back(t.get());
  }
  return route;
}

Transport* TransferEngineImpl::NextAfterRefusal(SegmentId id, const SegmentDescriptor& peer,
                                                Transport* failed, const Status& why) {
  ReaderMutexLock alive(&stopping_mu_);
  if (stopping_) return nullptr;               // shutting down: the slice ends as it failed
  if (failed->CanReach(peer)) return nullptr;  // a data error or a dead peer, not a refusal
  std::vector<Transport*> route = Route(peer);
  if (route.empty()) return nullptr;
  bool first_time = false;
  {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(id);
    // Log once per peer and transport: the first slice that finds it still in the route.
    if (it != segments_.end() && it->second.desc->pid == peer.pid) {
      auto& r = it->second.route;
      first_time = std::find(r.begin(), r.end(), failed) != r.end();
      r = route;
    }
  }
  counters_.transport_fallbacks.fetch_add(1, std::memory_order_relaxed);
  if (first_time) {
    FERRY_LOG_WARN("transport {} refused segment {} ({}); moving to {}", failed->name(), peer.name,
                   why.message(), route.front()->name());
  }
  return route.front();
}

Status TransferEngineImpl::SendNotification(SegmentId segment, const std::string& message) {
  SegmentDescriptor peer;
  {
    MutexLock lock(&segments_mu_);
    auto it = segments_.find(segment);
    if (it == segments_.end()) {
      return InvalidArgumentError("unknown segment id " + std::to_string(segment) +
                                  "; OpenSegment first");
    }
    peer = *it->second.desc;
  }
  return control_->SendNotification(peer, local_name_, message,
                                    Deadline::In(options_.default_timeout));
}

}  // namespace transfer
}  // namespace ferry
