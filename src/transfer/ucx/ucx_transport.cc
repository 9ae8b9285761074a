#include "transfer/ucx/ucx_transport.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string_view>

#include <fmt/format.h>

#include "common/log.h"
#include "common/mutex.h"
#include "transfer/ucx/ucx_settings.h"

namespace ferry::transfer::ucx {
namespace {

// How long LocalMemoryChanged waits for the progress thread to (un)map memory.
constexpr auto kRemapTimeout = std::chrono::seconds(5);

}  // namespace

namespace {

// Whether the settings restrict UCX to RDMA NICs, whose hardware checks every rkey.
bool HardwareOnly(const UcxSettings& settings) {
  static constexpr std::string_view kHardware[] = {"ib",      "rc", "rc_v", "rc_x",   "rc_verbs",
                                                   "rc_mlx5", "ud", "ud_v", "ud_x",   "ud_verbs",
                                                   "ud_mlx5", "dc", "dc_x", "dc_mlx5"};
  for (const auto& [key, value] : settings.config) {
    if (key != "TLS") continue;
    std::string_view rest = value;
    if (rest.empty() || rest.front() == '^') return false;  // exclusions keep the rest
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view name = rest.substr(0, comma);
      if (!name.empty() && name.front() == '\\') name.remove_prefix(1);
      if (std::find(std::begin(kHardware), std::end(kHardware), name) == std::end(kHardware)) {
        return false;
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    return true;
  }
  return false;  // UCX's default: every transport, software ones included
}

}  // namespace

Result<std::unique_ptr<UcxTransport>> UcxTransport::Create(const TransportOptions& options,
                                                           TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(UcxSettings settings, UcxSettings::FromOptions(options));
  if (!options.secret.empty() && !HardwareOnly(settings)) {
    // UCX's tcp and shared-memory transports emulate RMA in software: they check no rkey,
    // so a peer holding a stale descriptor writes into memory this engine unregistered,
    // and nothing on those connections proves the deployment's secret. Only an RDMA NIC
    // enforces registrations (and rkeys reach only peers that passed the control plane's
    // HELLO). A deployment with a secret gets ucx on RDMA NICs or not at all.
    return PermissionDeniedError(
        "ucx: with a deployment secret, ucx runs only over RDMA NICs (ucx_tls=ib, or rc / ud / "
        "dc): UCX's tcp and shared-memory transports do not protect registered memory; use "
        "Ferry's tcp and shm there");
  }
  std::unique_ptr<UcxTransport> t(new UcxTransport(host));
  UcxTransport* self = t.get();
  auto worker = UcxWorker::Create(settings, [self](const UcxWorker::Peer& peer, const Status& why) {
    self->Refuse(peer.name, peer.key, why);
  });
  if (!worker.ok()) return worker.status();
  t->worker_ = std::move(*worker);
  std::vector<BufferDescriptor> buffers;
  if (host != nullptr) buffers = host->LocalDescriptor().buffers;
  FERRY_ASSIGN_OR_RETURN(std::string info, t->worker_->SetLocalBuffers(
                                               std::move(buffers), Deadline::In(kRemapTimeout)));
  MutexLock lock(&t->mu_);
  t->local_info_ = std::move(info);
  return t;
}

UcxTransport::UcxTransport(TransportHost* host) : host_(host) {}

UcxTransport::~UcxTransport() { worker_.reset(); }

std::string UcxTransport::PeerKey(const SegmentDescriptor& peer) {
  return peer.name + "#" + std::to_string(peer.pid);
}

Result<std::shared_ptr<const UcxPeerInfo>> UcxTransport::InfoFor(
    const SegmentDescriptor& peer) const {
  auto it = peer.transport_info.find("ucx");
  if (it == peer.transport_info.end()) {
    return UnavailableError("ucx: peer " + peer.name + " publishes no ucx info");
  }
  const std::string key = PeerKey(peer);
  MutexLock lock(&mu_);
  Parsed& p = parsed_[key];
  if ((p.info == nullptr && p.error.ok()) || p.version != peer.version || p.raw != it->second) {
    auto parsed = UcxPeerInfo::Parse(it->second);
    p.version = peer.version;
    p.raw = it->second;
    if (parsed.ok()) {
      p.info = std::make_shared<const UcxPeerInfo>(std::move(*parsed));
      p.error = OkStatus();
    } else {
      p.info = nullptr;
      p.error = UnavailableError("ucx: peer " + peer.name +
                                 " published malformed ucx info: " + parsed.status().message());
      if (refused_.emplace(key, peer.name).second) {
        FERRY_LOG_WARN("{}; refusing it until it is forgotten", p.error.message());
      }
    }
  }
  if (p.info == nullptr) return p.error;
  return p.info;
}

bool UcxTransport::CanReach(const SegmentDescriptor& peer) const {
  if (!InfoFor(peer).ok()) return false;
  return !IsRefused(peer);
}

bool UcxTransport::IsRefused(const SegmentDescriptor& peer) const {
  MutexLock lock(&mu_);
  return refused_.count(PeerKey(peer)) > 0;
}

void UcxTransport::Refuse(const std::string& name, const std::string& key,
                          const Status& why) const {
  MutexLock lock(&mu_);
  if (refused_.emplace(key, name).second) {
    FERRY_LOG_WARN("ucx: refusing peer {} until it is forgotten: {}", name, why.message());
  }
}

void UcxTransport::Submit(const SegmentDescriptor& peer, std::span<Slice> slices,
                          Deadline deadline) {
  auto info = InfoFor(peer);
  Status refused = info.status();
  if (refused.ok() && IsRefused(peer)) {
    refused = UnavailableError("ucx: peer " + peer.name + " was refused earlier");
  }
  if (!refused.ok()) {
    for (Slice& s : slices) s.done(refused);
    return;
  }
  UcxWorker::Peer p{peer.name, PeerKey(peer), peer.version, *info};
  worker_->Submit(std::move(p),
                  std::vector<Slice>(std::make_move_iterator(slices.begin()),
                                     std::make_move_iterator(slices.end())),
                  deadline);
}

void UcxTransport::ForgetPeer(const std::string& peer_name) {
  {
    MutexLock lock(&mu_);
    for (auto it = refused_.begin(); it != refused_.end();) {
      it = it->second == peer_name ? refused_.erase(it) : std::next(it);
    }
    const std::string prefix = peer_name + "#";
    for (auto it = parsed_.begin(); it != parsed_.end();) {
      it = it->first.rfind(prefix, 0) == 0 ? parsed_.erase(it) : std::next(it);
    }
  }
  worker_->ForgetPeer(peer_name);
}

void UcxTransport::DescribeLocal(SegmentDescriptor* descriptor) const {
  MutexLock lock(&mu_);
  descriptor->transport_info["ucx"] = local_info_;
}

void UcxTransport::LocalMemoryChanged() {
  if (host_ == nullptr) return;
  auto info =
      worker_->SetLocalBuffers(host_->LocalDescriptor().buffers, Deadline::In(kRemapTimeout));
  if (!info.ok()) {
    FERRY_LOG_ERROR("ucx: updating the mapped buffers failed: {}", info.status().ToString());
    return;
  }
  MutexLock lock(&mu_);
  local_info_ = std::move(*info);
}

Result<void*> UcxTransport::AllocateMemory(size_t length) {
  FERRY_ASSIGN_OR_RETURN(void* p, worker_->Allocate(length, Deadline::In(kRemapTimeout)));
  // UCX's last-resort method (the heap) does not zero; the others' pages are committed by
  // registration on RDMA anyway.
  std::memset(p, 0, length);
  return p;
}

Status UcxTransport::FreeMemory(void* addr) {
  return worker_->Free(addr, Deadline::In(kRemapTimeout));
}

Result<std::unique_ptr<Transport>> CreateUcxTransport(const TransportOptions& options,
                                                      TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(auto t, UcxTransport::Create(options, host));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ferry::transfer::ucx
