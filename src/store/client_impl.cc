#include "store/client_impl.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <future>
#include <utility>

#include "common/crypto.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/mutex.h"
#include "fmt/format.h"

namespace ferry::store {
namespace {

using Clock = std::chrono::steady_clock;

// Longest key the client sends; the master refuses longer ones too.
constexpr size_t kMaxKeyBytes = 4096;

void ToProto(const ReplicateConfig& c, rpc::ReplicateConfig* out) {
  out->set_replica_num(static_cast<uint32_t>(std::max<size_t>(c.replica_num, 1)));
  out->set_with_soft_pin(c.with_soft_pin);
  out->set_soft_pin_ttl_ms(static_cast<uint64_t>(std::max<int64_t>(c.soft_pin_ttl.count(), 0)));
  out->set_with_hard_pin(c.with_hard_pin);
  for (const auto& s : c.preferred_segments) out->add_preferred_segments(s);
  out->set_prefer_alloc_in_same_node(c.prefer_alloc_in_same_node);
  for (const auto& g : c.group_ids) out->add_group_ids(g);
}

ReplicaDescriptor FromProto(const rpc::Replica& r) {
  ReplicaDescriptor d;
  d.tier = r.tier() == rpc::LOCAL_DISK ? ReplicaTier::kLocalDisk
           : r.tier() == rpc::DISK     ? ReplicaTier::kDisk
                                       : ReplicaTier::kMemory;
  d.status = r.status() == rpc::COMPLETE ? ReplicaStatus::kComplete : ReplicaStatus::kProcessing;
  d.segment_id = r.segment_id();
  d.hostname = r.hostname();
  for (const auto& b : r.buffers())
    d.buffers.push_back({b.segment_name(), b.address(), b.length()});
  d.disk_owner = r.disk_owner();
  d.disk_size = r.disk_size();
  d.disk_rpc_address = r.disk_rpc_address();
  return d;
}

Status CheckKey(std::string_view key) {
  if (key.empty()) return StoreError(ErrorCode::kInvalidParams, "the key is empty");
  if (key.size() > kMaxKeyBytes) {
    return StoreError(ErrorCode::kInvalidParams, fmt::format("the key is {} bytes; the limit is {}",
                                                             key.size(), kMaxKeyBytes));
  }
  return OkStatus();
}

uint64_t TotalLength(const std::vector<Piece>& pieces) {
  uint64_t n = 0;
  for (const Piece& p : pieces) n += p.length;
  return n;
}

template <typename T>
std::vector<T> Filled(size_t n, const Status& s) {
  return std::vector<T>(n, T(s));
}

// Adds the well-formed keys to `req`'s keys and returns their indexes in `keys`; the
// others' errors go to bad(index, status). No RPC carries a key the master would refuse.
template <typename Req, typename Bad>
std::vector<size_t> AddCheckedKeys(std::span<const std::string> keys, Req* req, Bad&& bad) {
  std::vector<size_t> asked;
  asked.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    Status s = CheckKey(keys[i]);
    if (!s.ok()) {
      bad(i, std::move(s));
      continue;
    }
    req->add_keys(keys[i]);
    asked.push_back(i);
  }
  return asked;
}

// A reply whose result count is not `n` (the master's claim about itself) is an error.
template <typename Rep>
void CheckResultCount(Result<Rep>& rep, size_t n, std::string_view call) {
  if (rep.ok() && rep->results_size() != static_cast<int>(n)) {
    rep = StoreError(ErrorCode::kRpcFail,
                     fmt::format("the master's {} reply has {} results for {} keys", call,
                                 rep->results_size(), n));
  }
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  return ClientImpl::Start(options);
}

Client::~Client() = default;

Result<std::unique_ptr<Client>> ClientImpl::Start(const ClientOptions& options) {
  std::unique_ptr<ClientImpl> client(new ClientImpl(options));
  Status s = client->Init();
  if (!s.ok()) {
    (void)client->Close();
    return s;
  }
  return std::unique_ptr<Client>(std::move(client));
}

ClientImpl::ClientImpl(const ClientOptions& options) : options_(options) {}

ClientImpl::~ClientImpl() { (void)Close(); }

Status ClientImpl::Init() {
  auto host = ParseHostPort(options_.local_hostname, 0);
  if (!host.ok()) return StoreError(ErrorCode::kInvalidParams, host.status().message());
  if (options_.ping_interval.count() <= 0 || options_.transfer_timeout.count() <= 0) {
    return StoreError(ErrorCode::kInvalidParams, "ping_interval and transfer_timeout must be > 0");
  }
  std::string transport;
  // "rdma": the engine's shm, ucx (the host's RDMA NICs), tcp; it warns where this build or
  // host has no RDMA.
  if (options_.protocol == "tcp" || options_.protocol == "shm" || options_.protocol == "auto" ||
      options_.protocol == "ucx" || options_.protocol == "rdma") {
    transport = options_.protocol;
  } else {
    return StoreError(ErrorCode::kInvalidParams,
                      "protocol '" + options_.protocol + "' is not tcp, shm, auto, ucx or rdma");
  }
  if (options_.engine != nullptr) {
    engine_ = options_.engine;
  } else {
    TransferEngineOptions eo;
    eo.local_name = host->ToString();
    eo.metadata = options_.metadata_server;
    eo.transport = transport;
    eo.device_name = options_.device_name;
    eo.secret = options_.secret;
    eo.default_timeout = options_.transfer_timeout;
    // Opening a member's segment (its handshake) is part of a transfer: a paused member
    // must not hold a get longer than the transfer deadline.
    eo.connect_timeout = std::min(eo.connect_timeout, options_.transfer_timeout);
    auto engine = TransferEngine::Create(eo);
    if (!engine.ok()) return engine.status().WithContext("store client: transfer engine");
    owned_engine_ = std::move(*engine);
    engine_ = owned_engine_.get();
  }
  local_name_ = engine_->local_name();
  auto self = ParseHostPort(local_name_);
  local_host_ = self.ok() ? self->host : host->host;
  client_id_ = crypto::RandomHex(16);

  FERRY_ASSIGN_OR_RETURN(master_,
                         MasterClient::Create(options_.master_server_address, options_.secret,
                                              options_.rpc_timeout, options_.cluster_id));
  rpc::PingRequest ping;
  ping.set_client_id(client_id_);
  auto pong = master_->Ping(ping);
  if (!pong.ok()) return pong.status().WithContext("store client: the master does not answer");

  if (options_.global_segment_size > 0) {
    segment_size_ = options_.global_segment_size;
    // Managed: memory the engine's first transport serves best (shm: a memfd that
    // same-host clients map and copy into with memcpy), registered for peers.
    auto p = engine_->AllocateManagedBuffer(segment_size_);
    if (!p.ok()) {
      segment_size_ = 0;
      return StoreError(ErrorCode::kNoAvailableHandle,
                        fmt::format("cannot allocate a {}-byte segment: {}",
                                    options_.global_segment_size, p.status().message()));
    }
    segment_base_ = *p;
    segment_id_ = crypto::RandomHex(16);
    rpc::MountSegmentRequest req;
    req.set_client_id(client_id_);
    *req.mutable_segment() = SegmentProto();
    FERRY_ASSIGN_OR_RETURN(rpc::MountSegmentReply rep, master_->MountSegment(req));
    FERRY_RETURN_IF_ERROR(ToStatus(rep.result()).WithContext("mounting the segment"));
    mounted_ = true;
  }
  FERRY_RETURN_IF_ERROR(StartDiskTier());
  // A new leader does not know this client: ping it at once (and re-mount), not a ping
  // interval later, so that its segment takes puts again within milliseconds.
  master_->OnLeaderChange([this](const std::string& leader) {
    if (leader.empty()) return;
    MutexLock lock(&ping_mu_);
    ping_now_ = true;
    ping_cv_.SignalAll();
  });
  ping_thread_ = std::thread([this] { PingLoop(); });
  return OkStatus();
}

Status ClientImpl::StartDiskTier() {
  const char* env = std::getenv("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH");
  const std::string path = !options_.ssd_offload_path.empty() ? options_.ssd_offload_path
                           : env != nullptr                   ? env
                                                              : "";
  const bool wanted = options_.enable_ssd_offload || (env != nullptr && *env != 0 && mounted_);
  if (!wanted) return OkStatus();
  DiskTierOptions o;
  o.path = path;
  o.capacity = options_.ssd_capacity;
  o.listen_host = local_host_;
  o.secret = options_.secret;
  o.staging_lease = options_.transfer_timeout;
  o.poll_wait =
      std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500), options_.rpc_timeout / 2);
  DiskTierIdentity self{client_id_, local_name_, local_host_,
                        static_cast<const char*>(segment_base_), segment_size_};
  auto write = [this](const char* local, const std::string& segment, uint64_t remote,
                      size_t length) {
    return Execute(TransferOp::kWrite, {{Move{const_cast<char*>(local), segment, remote, length}}})
        .front();
  };
  FERRY_ASSIGN_OR_RETURN(disk_tier_, DiskTier::Start(o, self, engine_, master_.get(), write));
  return disk_tier_->Register();
}

rpc::Segment ClientImpl::SegmentProto() const {
  rpc::Segment s;
  s.set_id(segment_id_);
  s.set_name(local_name_);
  s.set_hostname(local_host_);
  s.set_base(reinterpret_cast<uint64_t>(segment_base_));
  s.set_size(segment_size_);
  return s;
}

void ClientImpl::PingLoop() {
  bool failing = false;
  MutexLock lock(&ping_mu_);
  for (;;) {
    ping_cv_.WaitFor(&ping_mu_, options_.ping_interval,
                     [this]() FERRY_REQUIRES(ping_mu_) { return stop_ || ping_now_; });
    if (stop_) break;
    ping_now_ = false;
    lock.Unlock();
    rpc::PingRequest req;
    req.set_client_id(client_id_);
    auto rep = master_->Ping(req);
    if (!rep.ok()) {
      if (!failing) FERRY_LOG_WARN("store client: ping failed: {}", rep.status().ToString());
      failing = true;
    } else {
      if (failing) FERRY_LOG_INFO("store client: the master answers again");
      failing = false;
      if (rep->client_status() == rpc::NEED_REMOUNT && mounted_) {
        rpc::RemountSegmentsRequest remount;
        remount.set_client_id(client_id_);
        *remount.add_segments() = SegmentProto();
        auto r = master_->RemountSegments(remount);
        Status s = r.ok() ? (r->results_size() == 1 ? ToStatus(r->results(0))
                                                    : InternalError("bad remount reply"))
                          : r.status();
        if (s.ok()) {
          remounts_.fetch_add(1, std::memory_order_relaxed);
          FERRY_LOG_WARN("store client: the master had dropped this client; segment re-mounted");
          if (disk_tier_) s = disk_tier_->Register();
          if (!s.ok()) FERRY_LOG_WARN("store client: SSD tier not registered: {}", s.ToString());
        } else {
          FERRY_LOG_WARN("store client: re-mount failed: {}", s.ToString());
        }
      }
    }
    lock.Lock();
  }
}

Status ClientImpl::Close() {
  if (closed_.exchange(true)) return OkStatus();
  if (master_) master_->OnLeaderChange(nullptr);
  {
    MutexLock lock(&ping_mu_);
    stop_ = true;
  }
  ping_cv_.SignalAll();
  if (ping_thread_.joinable()) ping_thread_.join();
  if (disk_tier_) disk_tier_->Stop();  // its files stay for the next start
  Status result;
  if (mounted_) {
    rpc::UnmountSegmentRequest req;
    req.set_client_id(client_id_);
    req.set_segment_id(segment_id_);
    auto rep = master_->UnmountSegment(req);
    result = rep.ok() ? ToStatus(rep->result()) : rep.status();
    mounted_ = false;
  }
  disk_tier_.reset();
  if (segment_base_ != nullptr) {
    if (engine_ != nullptr) (void)engine_->FreeManagedBuffer(segment_base_);
    segment_base_ = nullptr;
  }
  owned_engine_.reset();
  return result;
}

Status ClientImpl::CheckOpen() const {
  if (closed_.load(std::memory_order_relaxed)) {
    return FailedPreconditionError("the store client is closed");
  }
  return OkStatus();
}

Status ClientImpl::HealthCheck() {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  FERRY_ASSIGN_OR_RETURN(rpc::HealthReply rep, master_->Health(rpc::HealthRequest()));
  return ToStatus(rep.result());
}

Status ClientImpl::RegisterBuffer(void* addr, size_t length) {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  return engine_->RegisterMemory(MemoryRegion{addr, length, "cpu", false});
}

Status ClientImpl::UnregisterBuffer(void* addr) {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  return engine_->UnregisterMemory(addr);
}

// ---- Moving bytes ----

Status ClientImpl::Zip(const std::vector<Piece>& pieces, const rpc::Replica& replica,
                       std::vector<Move>* out) {
  size_t piece = 0, piece_off = 0;
  for (const rpc::Buffer& b : replica.buffers()) {
    uint64_t done = 0;
    while (done < b.length()) {
      while (piece < pieces.size() && piece_off == pieces[piece].length) {
        ++piece;
        piece_off = 0;
      }
      if (piece == pieces.size()) {
        return StoreError(ErrorCode::kBufferOverflow,
                          "the object is larger than the buffers given for it");
      }
      const size_t take = static_cast<size_t>(
          std::min<uint64_t>(b.length() - done, pieces[piece].length - piece_off));
      if (b.address() + done < b.address()) {
        return StoreError(ErrorCode::kInvalidReplica, "a replica buffer wraps the address space");
      }
      out->push_back({static_cast<char*>(pieces[piece].addr) + piece_off, b.segment_name(),
                      b.address() + done, take});
      done += take;
      piece_off += take;
    }
  }
  return OkStatus();
}

std::vector<Status> ClientImpl::Execute(TransferOp op,
                                        const std::vector<std::vector<Move>>& groups) {
  std::vector<Status> results(groups.size());
  std::vector<TransferRequest> requests;
  std::vector<size_t> owner;
  std::vector<SegmentId> peers;
  const auto seg_begin = reinterpret_cast<uint64_t>(segment_base_);
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<TransferRequest> mine;
    for (const Move& m : groups[g]) {
      if (m.length == 0) continue;
      if (m.segment_name == local_name_ && segment_base_ != nullptr) {
        // This process's own segment: checked against its bounds, then one memcpy.
        if (!RangeWithin(seg_begin, segment_size_, m.remote, m.length)) {
          results[g] = StoreError(ErrorCode::kInvalidReplica,
                                  "a replica range lies outside this client's segment");
          break;
        }
        char* mem = reinterpret_cast<char*>(m.remote);
        if (op == TransferOp::kWrite) {
          std::memcpy(mem, m.local, m.length);
        } else {
          std::memcpy(m.local, mem, m.length);
        }
        continue;
      }
      auto id = engine_->OpenSegment(m.segment_name);  // cached by name in the engine
      if (!id.ok()) {
        results[g] = StoreError(ErrorCode::kTransferFail, id.status().message());
        break;
      }
      mine.push_back({op, m.local, *id, m.remote, m.length});
      peers.push_back(*id);
    }
    if (!results[g].ok()) continue;
    for (auto& r : mine) {
      requests.push_back(r);
      owner.push_back(g);
    }
  }
  if (requests.empty()) return results;

  auto fail = [&](size_t g, const Status& s) {
    if (results[g].ok()) {
      results[g] =
          StoreError(ErrorCode::kTransferFail,
                     fmt::format("{} failed: {}", op == TransferOp::kWrite ? "writing" : "reading",
                                 s.ToString()));
    }
  };
  // Neighbours in both address spaces become one request: a batch of small objects put
  // from (or read into) one buffer and placed side by side by the allocator moves as a
  // few large transfers. merged_from[j] is the first of requests[] that merged[j] covers.
  std::vector<TransferRequest> merged;
  std::vector<size_t> merged_from;
  constexpr size_t kMaxMerged = 64u << 20;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TransferRequest& r = requests[i];
    if (!merged.empty()) {
      TransferRequest& last = merged.back();
      if (last.segment == r.segment && last.remote + last.length == r.remote &&
          static_cast<char*>(last.local) + last.length == static_cast<char*>(r.local) &&
          last.length + r.length <= kMaxMerged) {
        last.length += r.length;
        continue;
      }
    }
    merged.push_back(r);
    merged_from.push_back(i);
  }
  merged_from.push_back(requests.size());
  auto fail_merged = [&](size_t j, const Status& s) {
    for (size_t i = merged_from[j]; i < merged_from[j + 1]; ++i) fail(owner[i], s);
  };
  auto batch = engine_->AllocateBatch(merged.size());
  Status submitted =
      batch.ok() ? engine_->Submit(*batch, merged, options_.transfer_timeout) : batch.status();
  if (!submitted.ok()) {
    // Nothing started. A member that re-registered its memory since we cached its
    // descriptor refuses the whole submit: refresh the descriptors and run each key alone
    // so that one bad key does not fail the others.
    if (batch.ok()) (void)engine_->FreeBatch(*batch);
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    for (SegmentId p : peers) (void)engine_->GetSegmentDescriptor(p, /*refresh=*/true);
    for (size_t begin = 0; begin < requests.size();) {
      size_t end = begin;
      while (end < requests.size() && owner[end] == owner[begin]) ++end;
      Status s = engine_->TransferSync(
          std::span<const TransferRequest>(requests.data() + begin, end - begin),
          options_.transfer_timeout);
      if (!s.ok()) fail(owner[begin], s);
      begin = end;
    }
    return results;
  }
  Status waited = engine_->WaitBatch(*batch, options_.transfer_timeout);
  if (!waited.ok()) {
    // Every request ends by its deadline; give stragglers a moment past ours.
    (void)engine_->WaitBatch(*batch, std::chrono::seconds(2));
    for (size_t j = 0; j < merged.size(); ++j) {
      auto st = engine_->GetTransferStatus(*batch, j);
      if (!st.ok()) {
        fail_merged(j, st.status());
      } else if (st->state == TransferState::kFailed) {
        fail_merged(j, st->error);
      } else if (st->state == TransferState::kPending) {
        fail_merged(j, DeadlineExceededError("the transfer did not finish in time"));
      }
    }
  }
  Status freed = engine_->FreeBatch(*batch);
  if (!freed.ok()) FERRY_LOG_WARN("store client: batch not freed: {}", freed.ToString());
  return results;
}

// ---- Puts ----

std::vector<Status> ClientImpl::PutPieces(std::span<const std::string> keys,
                                          std::span<const std::vector<Piece>> values,
                                          const ReplicateConfig& config, PutMode mode) {
  const size_t n = keys.size();
  if (values.size() != n) {
    return std::vector<Status>(n,
                               StoreError(ErrorCode::kInvalidParams,
                                          fmt::format("{} keys but {} values", n, values.size())));
  }
  if (Status s = CheckOpen(); !s.ok()) return std::vector<Status>(n, s);
  std::vector<Status> results(n);
  rpc::BatchPutStartRequest start;
  start.set_client_id(client_id_);
  ToProto(config, start.mutable_config());
  start.set_upsert(mode == PutMode::kUpsert);
  std::vector<size_t> asked;  // request item -> key index
  for (size_t i = 0; i < n; ++i) {
    results[i] = CheckKey(keys[i]);
    const uint64_t size = TotalLength(values[i]);
    if (results[i].ok() && size == 0) {
      results[i] = StoreError(ErrorCode::kInvalidParams, "the value is empty");
    }
    for (const Piece& p : values[i]) {
      if (results[i].ok() && p.addr == nullptr && p.length > 0) {
        results[i] = StoreError(ErrorCode::kInvalidParams, "a value piece has a null address");
      }
    }
    if (!results[i].ok()) continue;
    auto* item = start.add_items();
    item->set_key(keys[i]);
    item->set_size(size);
    asked.push_back(i);
  }
  if (!asked.empty()) {
    auto rep = PutStartRetrying(start);
    CheckResultCount(rep, asked.size(), "PutStart");
    if (!rep.ok()) {
      rpc_failures_.fetch_add(1, std::memory_order_relaxed);
      for (size_t i : asked) results[i] = rep.status();
    } else {
      std::vector<std::vector<Move>> groups;
      std::vector<size_t> writing;  // group -> key index
      std::vector<const rpc::PutStartResult*> started(n, nullptr);
      for (size_t j = 0; j < asked.size(); ++j) {
        const size_t i = asked[j];
        const rpc::PutStartResult& r = rep->results(static_cast<int>(j));
        started[i] = &r;
        Status s = ToStatus(r.result());
        if (!s.ok()) {
          // First writer wins: the key is kept, and the put counts as done.
          if (ErrorCodeOf(s) != ErrorCode::kObjectAlreadyExists || mode == PutMode::kUpsert) {
            results[i] = s;
          }
          continue;
        }
        std::vector<Move> moves;
        if (r.replicas_size() == 0) {
          s = StoreError(ErrorCode::kInvalidReplica, "the master gave no replica to write");
        }
        for (const rpc::Replica& replica : r.replicas()) {
          uint64_t len = 0;
          for (const auto& b : replica.buffers()) len += b.length();
          if (!s.ok()) break;
          if (len != TotalLength(values[i])) {
            s = StoreError(ErrorCode::kInvalidReplica,
                           fmt::format("the master gave a {}-byte replica for a {}-byte value", len,
                                       TotalLength(values[i])));
            break;
          }
          s = Zip(values[i], replica, &moves);
        }
        if (!s.ok()) {
          results[i] = s;
          moves.clear();
        }
        groups.push_back(std::move(moves));
        writing.push_back(i);
      }
      std::vector<Status> moved = Execute(TransferOp::kWrite, groups);
      rpc::BatchKeysRequest end, revoke;
      end.set_client_id(client_id_);
      revoke.set_client_id(client_id_);
      std::vector<size_t> ended;
      for (size_t g = 0; g < writing.size(); ++g) {
        const size_t i = writing[g];
        if (results[i].ok() && moved[g].ok()) {
          end.add_keys(keys[i]);
          ended.push_back(i);
        } else {
          if (results[i].ok()) results[i] = moved[g];
          revoke.add_keys(keys[i]);
        }
      }
      if (revoke.keys_size() > 0) {
        rpcs_.fetch_add(1, std::memory_order_relaxed);
        auto r = master_->BatchPutRevoke(revoke);
        if (!r.ok()) {
          rpc_failures_.fetch_add(1, std::memory_order_relaxed);
          FERRY_LOG_WARN(
              "store client: PutRevoke failed (the master reclaims the space after "
              "its put_start timeouts): {}",
              r.status().ToString());
        }
      }
      if (end.keys_size() > 0) {
        rpcs_.fetch_add(1, std::memory_order_relaxed);
        auto r = master_->BatchPutEnd(end);
        CheckResultCount(r, ended.size(), "PutEnd");
        for (size_t j = 0; j < ended.size(); ++j) {
          results[ended[j]] = r.ok() ? ToStatus(r->results(static_cast<int>(j))) : r.status();
        }
        if (!r.ok()) rpc_failures_.fetch_add(1, std::memory_order_relaxed);
        ConfirmRetriedPutEnds(keys, started, ended, &results);
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (results[i].ok()) {
      puts_.fetch_add(1, std::memory_order_relaxed);
      bytes_put_.fetch_add(TotalLength(values[i]), std::memory_order_relaxed);
    } else {
      put_failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return results;
}

Result<rpc::BatchPutStartReply> ClientImpl::PutStartRetrying(const rpc::BatchPutStartRequest& req) {
  const Clock::time_point give_up = Clock::now() + options_.rpc_timeout;
  for (int attempt = 1;; ++attempt) {
    rpcs_.fetch_add(1, std::memory_order_relaxed);
    auto rep = master_->BatchPutStart(req);
    if (!rep.ok()) return rep;
    bool wait = false;
    for (const rpc::PutStartResult& r : rep->results()) {
      wait |= r.result().code() == ToInt(ErrorCode::kUnavailableInCurrentStatus);
    }
    const auto pause = std::chrono::milliseconds(5 * std::min(attempt, 20));
    if (!wait || Clock::now() + pause >= give_up) return rep;
    std::this_thread::sleep_for(pause);
  }
}

void ClientImpl::ConfirmRetriedPutEnds(std::span<const std::string> keys,
                                       const std::vector<const rpc::PutStartResult*>& started,
                                       const std::vector<size_t>& ended,
                                       std::vector<Status>* results) {
  rpc::BatchKeysRequest query;
  query.set_client_id(client_id_);
  std::vector<size_t> asked;
  for (size_t i : ended) {
    if (ErrorCodeOf((*results)[i]) != ErrorCode::kObjectNotFound) continue;
    query.add_keys(keys[i]);
    asked.push_back(i);
  }
  if (asked.empty()) return;
  // A PutEnd that the old leader applied (and logged) before it died answers "not in
  // progress" when retried on the new one: the put is done if the object is COMPLETE on the
  // very space this client wrote.
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  auto now = master_->BatchGetReplicaList(query);
  if (!now.ok() || now->results_size() != static_cast<int>(asked.size())) return;
  auto first_buffer = [](const rpc::Replica& r) {
    return r.buffers_size() == 0 ? std::pair<std::string, uint64_t>()
                                 : std::pair(r.buffers(0).segment_name(), r.buffers(0).address());
  };
  for (size_t j = 0; j < asked.size(); ++j) {
    const rpc::GetReplicaListResult& got = now->results(static_cast<int>(j));
    if (got.result().code() != 0 || started[asked[j]] == nullptr) continue;
    for (const rpc::Replica& mine : started[asked[j]]->replicas()) {
      for (const rpc::Replica& theirs : got.replicas()) {
        if (theirs.status() == rpc::COMPLETE && first_buffer(mine) == first_buffer(theirs)) {
          (*results)[asked[j]] = OkStatus();
        }
      }
    }
  }
}

namespace {

std::vector<Piece> AsPieces(std::span<const std::span<const std::byte>> parts) {
  std::vector<Piece> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back({const_cast<std::byte*>(p.data()), p.size()});
  return out;
}

}  // namespace

Status ClientImpl::Put(std::string_view key, std::span<const std::byte> value,
                       const ReplicateConfig& config, PutMode mode) {
  return PutFrom(key, value.data(), value.size(), config, mode);
}

Status ClientImpl::PutParts(std::string_view key, std::span<const std::span<const std::byte>> parts,
                            const ReplicateConfig& config, PutMode mode) {
  const std::string k(key);
  const std::vector<Piece> pieces = AsPieces(parts);
  return PutPieces({&k, 1}, {&pieces, 1}, config, mode)[0];
}

std::vector<Status> ClientImpl::BatchPut(std::span<const std::string> keys,
                                         std::span<const std::span<const std::byte>> values,
                                         const ReplicateConfig& config, PutMode mode) {
  std::vector<std::vector<Piece>> pieces;
  pieces.reserve(values.size());
  for (const auto& v : values) pieces.push_back({{const_cast<std::byte*>(v.data()), v.size()}});
  return PutPieces(keys, pieces, config, mode);
}

Status ClientImpl::PutFrom(std::string_view key, const void* data, size_t length,
                           const ReplicateConfig& config, PutMode mode) {
  const std::string k(key);
  const std::vector<Piece> pieces{{const_cast<void*>(data), length}};
  return PutPieces({&k, 1}, {&pieces, 1}, config, mode)[0];
}

std::vector<Status> ClientImpl::BatchPutFrom(std::span<const std::string> keys,
                                             std::span<const Piece> values,
                                             const ReplicateConfig& config, PutMode mode) {
  std::vector<std::vector<Piece>> pieces;
  pieces.reserve(values.size());
  for (const Piece& v : values) pieces.push_back({v});
  return PutPieces(keys, pieces, config, mode);
}

std::vector<Status> ClientImpl::BatchPutFromMultiBuffers(std::span<const std::string> keys,
                                                         std::span<const std::vector<Piece>> values,
                                                         const ReplicateConfig& config,
                                                         PutMode mode) {
  return PutPieces(keys, values, config, mode);
}

// ---- Gets ----

std::vector<ClientImpl::ReadPlan> ClientImpl::PlanReads(std::span<const std::string> keys) {
  std::vector<ReadPlan> plans(keys.size());
  if (Status s = CheckOpen(); !s.ok()) {
    for (auto& p : plans) p.status = s;
    return plans;
  }
  rpc::BatchKeysRequest req;
  req.set_client_id(client_id_);
  const std::vector<size_t> asked =
      AddCheckedKeys(keys, &req, [&](size_t i, Status s) { plans[i].status = std::move(s); });
  if (asked.empty()) return plans;
  const Clock::time_point asked_at = Clock::now();
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  auto rep = master_->BatchGetReplicaList(req);
  CheckResultCount(rep, asked.size(), "replica-list");
  if (!rep.ok()) {
    rpc_failures_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i : asked) plans[i].status = rep.status();
    return plans;
  }
  for (size_t j = 0; j < asked.size(); ++j) {
    ReadPlan& plan = plans[asked[j]];
    const rpc::GetReplicaListResult& r = rep->results(static_cast<int>(j));
    plan.status = ToStatus(r.result());
    if (!plan.status.ok()) continue;
    plan.size = r.size();
    plan.lease_end = asked_at + std::chrono::milliseconds(r.lease_ttl_ms());
    for (const rpc::Replica& replica : r.replicas()) {
      if (replica.status() == rpc::COMPLETE && replica.tier() == rpc::LOCAL_DISK &&
          replica.disk_size() == plan.size && !replica.disk_rpc_address().empty()) {
        plan.disk = replica;
      }
      if (replica.status() != rpc::COMPLETE || replica.tier() != rpc::MEMORY) continue;
      uint64_t len = 0;
      for (const auto& b : replica.buffers()) len += b.length();
      if (len != plan.size) continue;  // a replica that does not hold the object is skipped
      plan.replicas.push_back(replica);
    }
    if (plan.replicas.empty() && !plan.disk) {
      plan.status = StoreError(ErrorCode::kReplicaIsNotReady,
                               "no complete replica of '" + keys[asked[j]] + "'");
      continue;
    }
    // Nearest first: this process's segment, then same-host members, then the rest.
    auto rank = [&](const rpc::Replica& rr) {
      if (!rr.buffers().empty() && rr.buffers(0).segment_name() == local_name_) return 0;
      return rr.hostname() == local_host_ ? 1 : 2;
    };
    std::stable_sort(
        plan.replicas.begin(), plan.replicas.end(),
        [&](const rpc::Replica& a, const rpc::Replica& b) { return rank(a) < rank(b); });
  }
  return plans;
}

std::vector<Result<size_t>> ClientImpl::GetPieces(
    std::span<const std::string> keys, std::vector<std::vector<Piece>>* dest,
    const std::function<Status(size_t, uint64_t)>& sized_dest) {
  std::vector<ReadPlan> plans = PlanReads(keys);
  const size_t n = keys.size();
  std::vector<size_t> attempt(n, 0);
  std::vector<size_t> pending;
  std::vector<size_t> from_disk;  // no memory replica, or none could be read
  for (size_t i = 0; i < n; ++i) {
    if (!plans[i].status.ok()) continue;
    plans[i].status = sized_dest(i, plans[i].size);
    if (!plans[i].status.ok()) continue;
    (plans[i].replicas.empty() ? from_disk : pending).push_back(i);
  }
  // First round: every key's nearest replica, in one batch; then the next replica of the
  // keys that failed, until each succeeded or ran out of replicas.
  while (!pending.empty()) {
    std::vector<std::vector<Move>> groups(pending.size());
    std::vector<Status> zipped(pending.size());
    for (size_t g = 0; g < pending.size(); ++g) {
      const size_t i = pending[g];
      zipped[g] = Zip((*dest)[i], plans[i].replicas[attempt[i]], &groups[g]);
      if (!zipped[g].ok()) groups[g].clear();
    }
    std::vector<Status> moved = Execute(TransferOp::kRead, groups);
    std::vector<size_t> retry;
    for (size_t g = 0; g < pending.size(); ++g) {
      const size_t i = pending[g];
      Status s = zipped[g].ok() ? moved[g] : zipped[g];
      if (!s.ok() && zipped[g].ok() && attempt[i] + 1 == plans[i].replicas.size() &&
          plans[i].disk) {
        from_disk.push_back(i);
      } else if (s.ok() || !zipped[g].ok() || ++attempt[i] == plans[i].replicas.size()) {
        plans[i].status = s;
      } else {
        FERRY_LOG_DEBUG("store client: '{}': {}; trying the next replica", keys[i], s.ToString());
        retry.push_back(i);
      }
    }
    pending = std::move(retry);
  }
  if (!from_disk.empty()) ReadDiskCopies(keys, from_disk, &plans, dest);
  std::vector<Result<size_t>> out;
  out.reserve(n);
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    Status s = plans[i].status;
    if (s.ok() && now >= plans[i].lease_end) {
      s = StoreError(ErrorCode::kLeaseExpired,
                     "the read lease on '" + keys[i] +
                         "' ran out before its bytes arrived; they may belong to another object");
    }
    if (s.ok()) {
      gets_.fetch_add(1, std::memory_order_relaxed);
      bytes_got_.fetch_add(plans[i].size, std::memory_order_relaxed);
      out.emplace_back(static_cast<size_t>(plans[i].size));
    } else {
      get_failures_.fetch_add(1, std::memory_order_relaxed);
      out.emplace_back(s);
    }
  }
  return out;
}

MemberClient& ClientImpl::MemberAt(const std::string& address) {
  MutexLock lock(&members_mu_);
  std::unique_ptr<MemberClient>& m = members_[address];
  if (!m) m = std::make_unique<MemberClient>(address, options_.secret, options_.rpc_timeout);
  return *m;
}

void ClientImpl::ReadDiskCopies(std::span<const std::string> keys, const std::vector<size_t>& which,
                                std::vector<ReadPlan>* plans,
                                std::vector<std::vector<Piece>>* dest) {
  std::map<std::string, std::vector<size_t>> by_owner;
  for (size_t i : which) {
    ReadPlan& plan = (*plans)[i];
    // The bytes come from the owner's staging (kept for its own lease), not the segment.
    plan.lease_end = Clock::time_point::max();
    by_owner[plan.disk->disk_rpc_address()].push_back(i);
  }
  for (auto& [address, owned] : by_owner) {
    if (disk_tier_ && address == disk_tier_->rpc_address()) {
      for (size_t i : owned)
        (*plans)[i].status = disk_tier_->ReadLocal(keys[i], (*dest)[i]).status();
      continue;
    }
    constexpr int kRounds = 8;  // while the owner's staging memory is full
    MemberClient& member = MemberAt(address);
    std::vector<size_t> todo = std::move(owned);
    for (int round = 0; round < kRounds && !todo.empty(); ++round) {
      // Staging full at the owner: give other readers a moment to release theirs.
      if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5 * round));
      todo = ReadFromOwner(member, keys, todo, round + 1 < kRounds, plans, dest);
    }
  }
}

std::vector<size_t> ClientImpl::ReadFromOwner(MemberClient& member,
                                              std::span<const std::string> keys,
                                              const std::vector<size_t>& todo, bool may_retry,
                                              std::vector<ReadPlan>* plans,
                                              std::vector<std::vector<Piece>>* dest) {
  constexpr size_t kMaxKeysPerCall = 1024;   // the Member service's limit
  constexpr uint64_t kChunkBytes = 4 << 20;  // one ReadDisk's bytes (two in flight)
  // Chunks of at most kChunkBytes (one key at least), pipelined: the owner reads chunk c + 1
  // from disk while this client pulls chunk c.
  std::vector<std::pair<size_t, size_t>> chunks;
  for (size_t begin = 0; begin < todo.size();) {
    size_t end = begin;
    uint64_t bytes = 0;
    while (end < todo.size() && end - begin < kMaxKeysPerCall &&
           (end == begin || bytes + (*plans)[todo[end]].size <= kChunkBytes)) {
      bytes += (*plans)[todo[end]].size;
      ++end;
    }
    chunks.emplace_back(begin, end);
    begin = end;
  }
  std::vector<uint64_t> pulled;  // tokens of chunks pulled, released with the next ask
  auto ask = [&](size_t c) {
    rpc::ReadDiskRequest req;
    for (size_t t = chunks[c].first; t < chunks[c].second; ++t) req.add_keys(keys[todo[t]]);
    for (uint64_t token : pulled) req.add_release(token);
    pulled.clear();
    rpcs_.fetch_add(1, std::memory_order_relaxed);
    return std::async(std::launch::async,
                      [&member, req = std::move(req)] { return member.ReadDisk(req); });
  };
  std::vector<size_t> again;  // staging was full: ask again
  std::future<Result<rpc::ReadDiskReply>> next;
  if (!chunks.empty()) next = ask(0);
  for (size_t c = 0; c < chunks.size(); ++c) {
    const auto [begin, end] = chunks[c];
    auto rep = next.get();
    if (c + 1 < chunks.size()) next = ask(c + 1);
    if (rep.ok() && rep->items_size() != static_cast<int>(end - begin)) {
      rep = StoreError(ErrorCode::kRpcFail, "the member's ReadDisk reply has the wrong count");
    }
    if (!rep.ok()) {
      rpc_failures_.fetch_add(1, std::memory_order_relaxed);
      for (size_t t = begin; t < end; ++t) (*plans)[todo[t]].status = rep.status();
      continue;
    }
    std::vector<std::vector<Move>> groups;
    std::vector<size_t> moving;
    for (size_t t = begin; t < end; ++t) {
      const size_t i = todo[t];
      const rpc::ReadDiskItem& item = rep->items(static_cast<int>(t - begin));
      Status s = ToStatus(item.result());
      if (ErrorCodeOf(s) == ErrorCode::kNoAvailableHandle && may_retry) {
        again.push_back(i);
        continue;
      }
      if (s.ok() && item.staged().length() != (*plans)[i].size) {
        s = StoreError(ErrorCode::kInvalidReplica, "the member staged the wrong size");
      }
      std::vector<Move> moves;
      if (s.ok()) {
        rpc::Replica staged;
        *staged.add_buffers() = item.staged();
        s = Zip((*dest)[i], staged, &moves);
      }
      (*plans)[i].status = s;
      if (!s.ok()) continue;
      groups.push_back(std::move(moves));
      moving.push_back(i);
    }
    std::vector<Status> moved = Execute(TransferOp::kRead, groups);
    for (size_t g = 0; g < moving.size(); ++g) (*plans)[moving[g]].status = moved[g];
    if (rep->token() != 0) pulled.push_back(rep->token());
  }
  if (!pulled.empty()) (void)member.ReleaseDisk(pulled);
  return again;
}

Result<std::string> ClientImpl::Get(std::string_view key) {
  const std::string k(key);
  return std::move(BatchGet({&k, 1})[0]);
}

std::vector<Result<std::string>> ClientImpl::BatchGet(std::span<const std::string> keys) {
  std::vector<std::string> values(keys.size());
  std::vector<std::vector<Piece>> dest(keys.size());
  auto sized = [&](size_t i, uint64_t size) -> Status {
    if (size > values[i].max_size()) {
      return StoreError(ErrorCode::kBufferOverflow, "the object does not fit in memory");
    }
    values[i].resize(static_cast<size_t>(size));
    dest[i] = {{values[i].data(), values[i].size()}};
    return OkStatus();
  };
  std::vector<Result<size_t>> got = GetPieces(keys, &dest, sized);
  std::vector<Result<std::string>> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (got[i].ok()) {
      out.emplace_back(std::move(values[i]));
    } else {
      out.emplace_back(got[i].status());
    }
  }
  return out;
}

Result<size_t> ClientImpl::GetInto(std::string_view key, void* buffer, size_t capacity) {
  const std::string k(key);
  const Piece piece{buffer, capacity};
  return BatchGetInto({&k, 1}, {&piece, 1})[0];
}

std::vector<Result<size_t>> ClientImpl::BatchGetInto(std::span<const std::string> keys,
                                                     std::span<const Piece> buffers) {
  std::vector<std::vector<Piece>> pieces;
  pieces.reserve(buffers.size());
  for (const Piece& b : buffers) pieces.push_back({b});
  return BatchGetIntoMultiBuffers(keys, pieces);
}

std::vector<Result<size_t>> ClientImpl::BatchGetIntoMultiBuffers(
    std::span<const std::string> keys, std::span<const std::vector<Piece>> buffers) {
  if (buffers.size() != keys.size()) {
    return Filled<Result<size_t>>(
        keys.size(),
        StoreError(ErrorCode::kInvalidParams,
                   fmt::format("{} keys but {} buffers", keys.size(), buffers.size())));
  }
  std::vector<std::vector<Piece>> dest(buffers.begin(), buffers.end());
  auto sized = [&](size_t i, uint64_t size) -> Status {
    for (const Piece& p : dest[i]) {
      if (p.addr == nullptr && p.length > 0) {
        return StoreError(ErrorCode::kInvalidParams, "a buffer has a null address");
      }
    }
    const uint64_t capacity = TotalLength(dest[i]);
    if (size > capacity) {
      return StoreError(
          ErrorCode::kBufferOverflow,
          fmt::format("'{}' is {} bytes; the buffer holds {}", keys[i], size, capacity));
    }
    return OkStatus();
  };
  return GetPieces(keys, &dest, sized);
}

// ---- Metadata ----

Result<bool> ClientImpl::Exist(std::string_view key) {
  const std::string k(key);
  return BatchExist({&k, 1})[0];
}

std::vector<Result<bool>> ClientImpl::BatchExist(std::span<const std::string> keys) {
  const size_t n = keys.size();
  if (Status s = CheckOpen(); !s.ok()) return Filled<Result<bool>>(n, s);
  std::vector<Result<bool>> out(n, Result<bool>(false));
  rpc::BatchKeysRequest req;
  req.set_client_id(client_id_);
  const std::vector<size_t> asked =
      AddCheckedKeys(keys, &req, [&](size_t i, Status s) { out[i] = std::move(s); });
  if (asked.empty()) return out;
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  auto rep = master_->BatchExist(req);
  if (rep.ok() && rep->codes_size() != static_cast<int>(asked.size())) {
    rep = StoreError(ErrorCode::kRpcFail,
                     fmt::format("the master's exist reply has {} codes for {} keys",
                                 rep->codes_size(), asked.size()));
  }
  for (size_t j = 0; j < asked.size(); ++j) {
    if (!rep.ok()) {
      out[asked[j]] = rep.status();
      continue;
    }
    const auto code = static_cast<ErrorCode>(rep->codes(static_cast<int>(j)));
    if (code == ErrorCode::kOk) {
      out[asked[j]] = true;
    } else if (code == ErrorCode::kObjectNotFound || code == ErrorCode::kReplicaIsNotReady) {
      out[asked[j]] = false;
    } else {
      out[asked[j]] =
          StoreError(code, "exist '" + keys[asked[j]] + "': " + std::string(ErrorCodeName(code)));
    }
  }
  if (!rep.ok()) rpc_failures_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Result<uint64_t> ClientImpl::GetSize(std::string_view key) {
  const std::string k(key);
  ReadPlan plan = std::move(PlanReads({&k, 1})[0]);
  if (!plan.status.ok()) return plan.status;
  return plan.size;
}

Result<std::vector<ReplicaDescriptor>> ClientImpl::GetReplicaDescriptors(std::string_view key) {
  const std::string k(key);
  return std::move(BatchGetReplicaDescriptors({&k, 1})[0]);
}

std::vector<Result<std::vector<ReplicaDescriptor>>> ClientImpl::BatchGetReplicaDescriptors(
    std::span<const std::string> keys) {
  std::vector<ReadPlan> plans = PlanReads(keys);
  std::vector<Result<std::vector<ReplicaDescriptor>>> out;
  out.reserve(plans.size());
  for (const ReadPlan& p : plans) {
    if (!p.status.ok()) {
      out.emplace_back(p.status);
      continue;
    }
    std::vector<ReplicaDescriptor> d;
    for (const rpc::Replica& r : p.replicas) d.push_back(FromProto(r));
    if (p.disk) d.push_back(FromProto(*p.disk));
    out.emplace_back(std::move(d));
  }
  return out;
}

Status ClientImpl::Remove(std::string_view key, bool force) {
  const std::string k(key);
  return BatchRemove({&k, 1}, force)[0];
}

std::vector<Status> ClientImpl::BatchRemove(std::span<const std::string> keys, bool force) {
  const size_t n = keys.size();
  if (Status s = CheckOpen(); !s.ok()) return std::vector<Status>(n, s);
  std::vector<Status> out(n);
  rpc::BatchRemoveRequest req;
  req.set_force(force);
  const std::vector<size_t> asked =
      AddCheckedKeys(keys, &req, [&](size_t i, Status s) { out[i] = std::move(s); });
  if (asked.empty()) return out;
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  auto rep = master_->BatchRemove(req);
  CheckResultCount(rep, asked.size(), "remove");
  if (!rep.ok()) rpc_failures_.fetch_add(1, std::memory_order_relaxed);
  for (size_t j = 0; j < asked.size(); ++j) {
    out[asked[j]] = rep.ok() ? ToStatus(rep->results(static_cast<int>(j))) : rep.status();
  }
  return out;
}

Result<uint64_t> ClientImpl::RemoveByRegex(const std::string& regex, bool force) {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  rpc::RemoveByRegexRequest req;
  req.set_regex(regex);
  req.set_force(force);
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  FERRY_ASSIGN_OR_RETURN(rpc::RemoveCountReply rep, master_->RemoveByRegex(req));
  FERRY_RETURN_IF_ERROR(ToStatus(rep.result()));
  return rep.removed();
}

Result<uint64_t> ClientImpl::RemoveAll(bool force) {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  rpc::RemoveAllRequest req;
  req.set_force(force);
  rpcs_.fetch_add(1, std::memory_order_relaxed);
  FERRY_ASSIGN_OR_RETURN(rpc::RemoveCountReply rep, master_->RemoveAll(req));
  FERRY_RETURN_IF_ERROR(ToStatus(rep.result()));
  return rep.removed();
}

ClientCounters ClientImpl::counters() const {
  ClientCounters c;
  c.puts = puts_.load();
  c.put_failures = put_failures_.load();
  c.gets = gets_.load();
  c.get_failures = get_failures_.load();
  c.bytes_put = bytes_put_.load();
  c.bytes_got = bytes_got_.load();
  c.rpcs = rpcs_.load();
  c.rpc_failures = rpc_failures_.load();
  c.remounts = remounts_.load();
  return c;
}

std::string ClientImpl::MetricsText() const {
  const ClientCounters c = counters();
  std::string out;
  auto counter = [&out](const char* name, uint64_t v) {
    out += fmt::format("# TYPE {0} counter\n{0} {1}\n", name, v);
  };
  counter("ferry_store_client_puts_total", c.puts);
  counter("ferry_store_client_put_failures_total", c.put_failures);
  counter("ferry_store_client_gets_total", c.gets);
  counter("ferry_store_client_get_failures_total", c.get_failures);
  counter("ferry_store_client_put_bytes_total", c.bytes_put);
  counter("ferry_store_client_get_bytes_total", c.bytes_got);
  counter("ferry_store_client_rpcs_total", c.rpcs);
  counter("ferry_store_client_rpc_failures_total", c.rpc_failures);
  counter("ferry_store_client_remounts_total", c.remounts);
  if (disk_tier_) out += disk_tier_->MetricsText();
  return out;
}

}  // namespace ferry::store
