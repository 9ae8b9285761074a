#include "store/master/master_service.h"

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <tuple>
#include <utility>

#include "common/log.h"
#include "common/mutex.h"
#include "store/error_code.h"
#include "store/master/file_log_storage.h"

namespace ferry::store {

namespace {

// Upper bound on the ids of dropped clients remembered for NEED_REMOUNT.
constexpr size_t kMaxDroppedClients = 100000;

}  // namespace

MasterService::MasterService(MasterServiceOptions options)
    : options_(std::move(options)),
      segments_(options_.alignment),
      shard_count_(std::max<size_t>(1, options_.shards)),
      shards_(std::make_unique<Shard[]>(shard_count_)) {}

MasterService::~MasterService() = default;

Result<std::unique_ptr<MasterService>> MasterService::Create(MasterServiceOptions options,
                                                             std::unique_ptr<LogStorage> storage) {
  auto service = std::make_unique<MasterService>(options);
  if (!storage && options.data_dir.empty()) return service;
  MetadataLog::Options lo;
  lo.dir = options.data_dir;
  lo.snapshot_every_records = std::max<uint64_t>(1, options.snapshot_every_records);
  RecoveredMetadata state;
  if (!storage) storage = std::make_unique<FileLogStorage>(options.data_dir);
  FERRY_ASSIGN_OR_RETURN(service->log_, MetadataLog::Open(lo, std::move(storage), &state));
  service->Restore(state);
  FERRY_LOG_INFO(
      "master: {} recovered: {} segment(s) awaiting remount, {} object(s) (snapshot at "
      "sequence {}, {} log record(s) after it{})",
      service->log_->Describe(), state.segments.size(), service->keys_.load(), state.snapshot_seq,
      state.log_records, state.dropped_torn_tail ? ", a torn last record dropped" : "");
  FERRY_RETURN_IF_ERROR(service->Sync());  // the removals Restore logged
  return service;
}

void MasterService::Restore(const RecoveredMetadata& state) {
  const Clock::time_point now = Now();
  restored_at_ = now;
  for (const auto& [id, info] : state.segments) {
    Status s = segments_.Restore(info);
    if (!s.ok()) FERRY_LOG_WARN("master: segment '{}' not restored: {}", id, s.ToString());
  }
  awaiting_remount_ = !state.segments.empty();
  for (const auto& [key, rec] : state.objects) {
    Object obj;
    obj.size = rec.size;
    const bool in_progress = rec.type == MetadataRecord::Type::kPutStart;
    // A put in progress keeps its space and its writer, who may still write and then
    // PutEnd here; it is released as stale put_start_release_timeout from now.
    obj.status = in_progress ? ReplicaStatus::kProcessing : ReplicaStatus::kComplete;
    if (in_progress) obj.writer = rec.writer;
    obj.put_start = now;
    obj.last_access = now;
    // Readers may hold leases the last master granted (it kept them in memory): every
    // restored object counts as leased for one lease term, so that none is removed,
    // evicted or has its space handed out while such a read may still run.
    if (!in_progress) obj.lease_until = now + options_.default_kv_lease_ttl;
    obj.hard_pin = rec.hard_pin;
    if (rec.soft_pin) obj.soft_pin_until = now + options_.default_kv_soft_pin_ttl;
    Status bad;
    for (const MetadataRecord::Replica& r : rec.replicas) {
      auto range = segments_.RestoreRange(r.segment_id, r.address, r.length);
      if (!range.ok()) {
        bad = range.status();
        break;
      }
      obj.replicas.push_back({std::move(*range)});
    }
    if (!bad.ok() || obj.replicas.empty()) {
      // The log says it exists but its space cannot be taken back: drop it, durably.
      FERRY_LOG_WARN("master: object '{}' not restored: {}", key,
                     bad.ok() ? "no replicas" : bad.ToString());
      ReleaseSpace(obj, now);
      Log(MetadataRecord::Remove(key));
      continue;
    }
    Shard& shard = ShardOf(key);
    MutexLock lock(&shard.mu);
    shard.objects.emplace(key, std::move(obj));
    if (in_progress) shard.in_progress.emplace(key);
    keys_.fetch_add(1, std::memory_order_relaxed);
  }
}

void MasterService::Log(const MetadataRecord& record) {
  if (log_) log_->Append(record);
}

void MasterService::LogRemoval(const std::string& key) {
  if (log_) log_->Append(MetadataRecord::Remove(key));
}

MetadataRecord MasterService::PutRecord(const std::string& key, const Object& obj) const {
  MetadataRecord r;
  const bool in_progress = obj.status == ReplicaStatus::kProcessing;
  r.type = in_progress ? MetadataRecord::Type::kPutStart : MetadataRecord::Type::kPut;
  if (in_progress) r.writer = obj.writer;
  r.key = key;
  r.size = obj.size;
  r.hard_pin = obj.hard_pin;
  r.soft_pin = obj.soft_pin_until > Clock::time_point{};
  for (const Replica& rep : obj.replicas) {
    r.replicas.push_back({rep.range.segment_id(), rep.range.address, rep.range.length});
  }
  return r;
}

Status MasterService::Sync() { return log_ ? log_->Sync() : OkStatus(); }

Status MasterService::Checkpoint() {
  if (!log_) return OkStatus();
  MutexLock one_at_a_time(&checkpoint_mu_);
  // Changes wait only while the log is rotated (one sync). The copy that follows is fuzzy:
  // it may already hold changes logged after last_seq, which replay applies again on top of
  // it. That is safe because every record sets a key's (or a segment's) whole state, so
  // replaying the records after last_seq in order converges on the same state from any copy
  // taken after the rotation.
  MutexLock barrier(&barrier_);
  FERRY_ASSIGN_OR_RETURN(const uint64_t last_seq, log_->Rotate());
  barrier.Unlock();
  std::vector<MetadataRecord> records;
  for (const SegmentInfo& info : segments_.List()) records.push_back(MetadataRecord::Mount(info));
  for (size_t i = 0; i < shard_count_; ++i) {
    MutexLock lock(&shards_[i].mu);
    for (const auto& [key, obj] : shards_[i].objects) {
      // Disk-only objects are not in the log: their members register them again.
      if (!obj.replicas.empty()) records.push_back(PutRecord(key, obj));
    }
  }
  // In key order (mounts first): replay then inserts into its ordered map at the end, which
  // halves recovery time at a million objects.
  std::sort(records.begin(), records.end(), [](const MetadataRecord& a, const MetadataRecord& b) {
    return std::tie(a.type, a.key) < std::tie(b.type, b.key);
  });
  return log_->WriteSnapshot(last_seq, records);
}

Status MasterService::LogHealth() const { return log_ ? log_->health() : OkStatus(); }

std::optional<MetadataLog::Stats> MasterService::log_stats() const {
  if (!log_) return std::nullopt;
  return log_->stats();
}

MasterService::Clock::time_point MasterService::Now() const {
  return options_.clock ? options_.clock() : Clock::now();
}

MasterService::Shard& MasterService::ShardOf(std::string_view key) const {
  return shards_[std::hash<std::string_view>{}(key) % shard_count_];
}

void MasterService::TouchClient(std::string_view client_id, Clock::time_point now) {
  if (client_id.empty()) return;
  MutexLock lock(&clients_mu_);
  clients_[std::string(client_id)] = now;
}

Status MasterService::MountSegment(const SegmentInfo& segment) {
  if (segment.client_id.empty()) {
    return StoreError(ErrorCode::kInvalidParams, "a segment needs its client's id");
  }
  ReaderMutexLock barrier(&barrier_);
  Status s = segments_.Mount(segment);
  if (!s.ok()) return s;
  Log(MetadataRecord::Mount(segment));
  const Clock::time_point now = Now();
  TouchClient(segment.client_id, now);
  MutexLock lock(&clients_mu_);
  dropped_.erase(segment.client_id);
  return OkStatus();
}

Status MasterService::UnmountSegment(std::string_view segment_id, std::string_view client_id) {
  const std::vector<std::string> mine = segments_.SegmentsOf(client_id);
  if (std::find(mine.begin(), mine.end(), segment_id) == mine.end()) {
    if (!segments_.Has(segment_id)) {
      return StoreError(ErrorCode::kSegmentNotFound,
                        "segment '" + std::string(segment_id) + "' is not mounted");
    }
    return StoreError(ErrorCode::kInvalidParams,
                      "segment '" + std::string(segment_id) + "' was not mounted by this client");
  }
  ReaderMutexLock barrier(&barrier_);
  const uint64_t generation = segments_.GenerationOf(segment_id);
  Status s = segments_.Unmount(segment_id);
  if (!s.ok()) return s;
  Log(MetadataRecord::Unmount(segment_id));
  const Clock::time_point now = Now();
  DropSegmentObjects({{std::string(segment_id), generation}}, now);
  if (segments_.SegmentsOf(client_id).empty() && disk_tiers_.Find(client_id)) {
    DropDiskCopies({std::string(client_id)}, now);
  }
  return OkStatus();
}

void MasterService::DropSegmentObjects(const std::vector<SegmentGeneration>& gone_segments,
                                       Clock::time_point now) {
  if (gone_segments.empty()) return;
  auto gone = [&](const Replica& r) {
    for (const auto& [id, generation] : gone_segments) {
      if (r.range.segment_id() == id && r.range.generation == generation) return true;
    }
    return false;
  };
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    MutexLock lock(&shard.mu);
    for (auto it = shard.objects.begin(); it != shard.objects.end();) {
      Object& obj = it->second;
      const size_t before = obj.replicas.size();
      obj.replicas.erase(std::remove_if(obj.replicas.begin(), obj.replicas.end(), gone),
                         obj.replicas.end());
      const bool touched = obj.replicas.size() != before;
      if (touched && obj.status == ReplicaStatus::kComplete && obj.replicas.empty() && obj.disk) {
        // Disk-only from now on; an offload reading the lost segment cannot finish.
        if (obj.work == DiskWork::kOffload) EndDiskWork(obj, now);
        ++it;
      } else if (touched && (obj.replicas.empty() || obj.status == ReplicaStatus::kProcessing)) {
        it = Erase(shard, it, now);
      } else {
        ++it;
      }
    }
  }
}

bool MasterService::Ping(std::string_view client_id) {
  const Clock::time_point now = Now();
  // A member of the master before a restart: it may already have called (a put touches the
  // client) without having mounted its restored segments again.
  const bool remount =
      awaiting_remount_.load(std::memory_order_relaxed) && segments_.AwaitingRemountBy(client_id);
  MutexLock lock(&clients_mu_);
  const bool unknown = clients_.insert_or_assign(std::string(client_id), now).second;
  const bool dropped = dropped_.erase(std::string(client_id)) > 0;
  return unknown || dropped || remount;
}

void MasterService::ReleaseSpace(const Object& obj, Clock::time_point now) {
  const Clock::time_point not_before = std::max(obj.lease_until, obj.work_until);
  for (const Replica& r : obj.replicas) segments_.Release(r.range, not_before, now);
  if (obj.promoting) segments_.Release(*obj.promoting, not_before, now);
}

MasterService::ObjectMap::iterator MasterService::Erase(Shard& shard, ObjectMap::iterator it,
                                                        Clock::time_point now) {
  Object& obj = it->second;
  ReleaseSpace(obj, now);
  if (obj.work == DiskWork::kOffload) offloads_in_flight_.fetch_sub(1);
  if (obj.disk) disk_tiers_.PushDelete(obj.disk->client_id, it->first);
  shard.in_progress.erase(it->first);
  keys_.fetch_sub(1, std::memory_order_relaxed);
  return shard.objects.erase(it);
}

void MasterService::EndDiskWork(Object& obj, Clock::time_point now) {
  if (obj.work == DiskWork::kOffload) offloads_in_flight_.fetch_sub(1);
  if (obj.promoting) {
    segments_.Release(*obj.promoting, obj.lease_until, now);
    obj.promoting.reset();
  }
  obj.work = DiskWork::kNone;
  obj.work_ticket = 0;
  obj.work_until = {};
}

bool MasterService::StartOffload(Shard& shard, const std::string& key, Object& obj,
                                 Clock::time_point now) {
  if (!options_.enable_offload || obj.disk || obj.work != DiskWork::kNone || obj.offload_refused ||
      obj.status != ReplicaStatus::kComplete) {
    return false;
  }
  for (const Replica& r : obj.replicas) {
    if (!disk_tiers_.Find(r.range.client_id())) continue;
    obj.work = DiskWork::kOffload;
    obj.work_ticket = next_ticket_.fetch_add(1);
    obj.work_until = now + options_.offload_timeout;
    offloads_in_flight_.fetch_add(1);
    shard.disk_work.insert(key);
    disk_tiers_.PushOffload(r.range.client_id(), {key, obj.work_ticket, r.range.address, obj.size});
    return true;
  }
  return false;
}

void MasterService::NoteDiskRead(const std::string& key, Object& obj, Clock::time_point now) {
  disk_readbacks_.fetch_add(1, std::memory_order_relaxed);
  ++obj.disk_reads;
  if (!options_.promotion_on_hit || obj.work != DiskWork::kNone ||
      obj.disk_reads < std::max<uint32_t>(1, options_.promotion_admission_threshold)) {
    return;
  }
  obj.disk_reads = 0;
  // The owner's own segment first: the copy is then a local memcpy. No eviction for it.
  auto ranges =
      segments_.AllocateReplicas(obj.size, 1, {obj.disk->segment_name}, obj.disk->hostname, true);
  if (!ranges.ok()) return;
  obj.promoting = std::move(ranges->front());
  obj.work = DiskWork::kPromote;
  obj.work_ticket = next_ticket_.fetch_add(1);
  obj.work_until = now + options_.offload_timeout;
  Shard& shard = ShardOf(key);
  shard.mu.AssertHeld();  // the caller holds it: it reads and changes `obj`
  shard.disk_work.insert(key);
  disk_tiers_.PushPromote(obj.disk->client_id,
                          {key,
                           obj.work_ticket,
                           obj.size,
                           {obj.promoting->segment_name(), obj.promoting->address, obj.size}});
}

std::vector<ReplicaDescriptor> MasterService::Describe(const Object& obj) const {
  std::vector<ReplicaDescriptor> out;
  out.reserve(obj.replicas.size());
  for (const Replica& r : obj.replicas) {
    ReplicaDescriptor d;
    d.tier = ReplicaTier::kMemory;
    d.status = obj.status;
    d.segment_id = r.range.segment_id();
    d.hostname = r.range.hostname();
    d.buffers.push_back({r.range.segment_name(), r.range.address, obj.size});
    out.push_back(std::move(d));
  }
  if (obj.disk) {
    ReplicaDescriptor d;
    d.tier = ReplicaTier::kLocalDisk;
    d.status = obj.status;
    d.hostname = obj.disk->hostname;
    d.disk_owner = obj.disk->segment_name;
    d.disk_size = obj.size;
    d.disk_rpc_address = obj.disk->rpc_address;
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::vector<ReplicaDescriptor>> MasterService::PutStart(std::string_view key, uint64_t size,
                                                               const ReplicateConfig& config,
                                                               std::string_view client_id,
                                                               std::string_view writer_hostname,
                                                               PutMode mode) {
  if (key.empty()) return StoreError(ErrorCode::kInvalidParams, "empty key");
  if (size == 0) return StoreError(ErrorCode::kInvalidParams, "an object needs a size > 0");
  if (config.replica_num == 0) {
    return StoreError(ErrorCode::kInvalidParams, "replica_num must be at least 1");
  }
  const Clock::time_point now = Now();
  TouchClient(client_id, now);
  ReaderMutexLock barrier(&barrier_);
  Shard& shard = ShardOf(key);
  // Under the shard lock: whether this put may go ahead (an old object it replaces goes),
  // then the allocation. Eviction runs with the lock dropped (it takes every shard's lock
  // in turn), then the put is tried once more. `retry` is set for a PutStart sent again by
  // the client writing the key (its reply was lost, or it went to a master that has since
  // failed over): it gets the same space, so that bytes already on their way land where the
  // put ends.
  bool retry = false;
  auto admit = [&]() FERRY_REQUIRES(shard.mu) -> Status {
    auto it = shard.objects.find(key);
    if (it == shard.objects.end()) return OkStatus();
    Object& old = it->second;
    if (old.status == ReplicaStatus::kProcessing && old.writer == client_id) {
      retry = true;
      return OkStatus();
    }
    if (old.status == ReplicaStatus::kProcessing) {
      if (now - old.put_start < options_.put_start_discard_timeout) {
        return StoreError(ErrorCode::kObjectAlreadyExists,
                          "key '" + std::string(key) + "' is being written");
      }
    } else if (mode == PutMode::kInsert) {
      return StoreError(ErrorCode::kObjectAlreadyExists, "key '" + std::string(key) + "' exists");
    }
    LogRemoval(it->first);
    Erase(shard, it, now);
    return OkStatus();
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    MutexLock lock(&shard.mu);
    Status s = admit();
    if (!s.ok()) return s;
    if (retry) return Describe(shard.objects.find(key)->second);
    auto ranges = segments_.AllocateReplicas(size, config.replica_num, config.preferred_segments,
                                             writer_hostname, config.prefer_alloc_in_same_node);
    if (!ranges.ok()) {
      const SegmentTable::Totals t = segments_.totals();
      // No eviction for want of segments (restored ones awaiting remount take no puts).
      if (ErrorCodeOf(ranges.status()) != ErrorCode::kNoAvailableHandle || attempt == 1 ||
          config.replica_num > t.segments - t.awaiting_remount) {
        return ranges.status();
      }
      lock.Unlock();
      if (Evict(now) == 0) return ranges.status();
      continue;
    }
    Object obj;
    obj.size = size;
    obj.status = ReplicaStatus::kProcessing;
    obj.writer = std::string(client_id);
    obj.put_start = now;
    obj.last_access = now;
    obj.hard_pin = config.with_hard_pin;
    if (config.with_soft_pin) {
      const auto ttl =
          config.soft_pin_ttl.count() > 0 ? config.soft_pin_ttl : options_.default_kv_soft_pin_ttl;
      obj.soft_pin_until = now + ttl;
    }
    for (AllocatedRange& r : *ranges) obj.replicas.push_back({std::move(r)});
    std::vector<ReplicaDescriptor> out = Describe(obj);
    auto placed = shard.objects.emplace(std::string(key), std::move(obj)).first;
    shard.in_progress.emplace(key);
    Log(PutRecord(placed->first, placed->second));
    keys_.fetch_add(1, std::memory_order_relaxed);
    return out;
  }
  return StoreError(ErrorCode::kNoAvailableHandle, "no room after eviction");
}

MasterService::ObjectMap::iterator MasterService::FindPutInProgress(Shard& shard,
                                                                    std::string_view key,
                                                                    std::string_view client_id,
                                                                    Status* error) {
  auto it = shard.objects.find(key);
  if (it == shard.objects.end() || it->second.status != ReplicaStatus::kProcessing ||
      it->second.writer != client_id) {
    *error = StoreError(ErrorCode::kObjectNotFound,
                        "no put of '" + std::string(key) + "' by this client is in progress");
    return shard.objects.end();
  }
  return it;
}

Status MasterService::PutEnd(std::string_view key, std::string_view client_id) {
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  Status error;
  auto it = FindPutInProgress(shard, key, client_id, &error);
  if (it == shard.objects.end()) return error;
  it->second.status = ReplicaStatus::kComplete;
  std::string().swap(it->second.writer);  // only a put in progress needs its writer
  shard.in_progress.erase(it->first);
  it->second.last_access = now;
  if (log_) log_->Append(PutRecord(it->first, it->second));
  if (options_.eager_offload) StartOffload(shard, it->first, it->second, now);
  return OkStatus();
}

Status MasterService::PutRevoke(std::string_view key, std::string_view client_id) {
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  Status error;
  auto it = FindPutInProgress(shard, key, client_id, &error);
  if (it == shard.objects.end()) return error;
  LogRemoval(it->first);
  Erase(shard, it, now);
  return OkStatus();
}

Result<ReplicaList> MasterService::GetReplicaList(std::string_view key) {
  const Clock::time_point now = Now();
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  auto it = shard.objects.find(key);
  if (it == shard.objects.end()) {
    return StoreError(ErrorCode::kObjectNotFound, "key '" + std::string(key) + "' not found");
  }
  Object& obj = it->second;
  if (obj.status != ReplicaStatus::kComplete) {
    return StoreError(ErrorCode::kReplicaIsNotReady,
                      "key '" + std::string(key) + "' is still being written");
  }
  obj.lease_until = std::max(obj.lease_until, now + options_.default_kv_lease_ttl);
  obj.last_access = now;
  if (obj.replicas.empty()) NoteDiskRead(it->first, obj, now);
  return ReplicaList{Describe(obj), obj.size, obj.lease_until};
}

Status MasterService::Exist(std::string_view key) {
  const Clock::time_point now = Now();
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  auto it = shard.objects.find(key);
  if (it == shard.objects.end()) {
    return StoreError(ErrorCode::kObjectNotFound, "key '" + std::string(key) + "' not found");
  }
  if (it->second.status != ReplicaStatus::kComplete) {
    return StoreError(ErrorCode::kReplicaIsNotReady,
                      "key '" + std::string(key) + "' is still being written");
  }
  it->second.lease_until = std::max(it->second.lease_until, now + options_.default_kv_lease_ttl);
  return OkStatus();
}

Status MasterService::Remove(std::string_view key, bool force) {
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  auto it = shard.objects.find(key);
  if (it == shard.objects.end()) {
    return StoreError(ErrorCode::kObjectNotFound, "key '" + std::string(key) + "' not found");
  }
  const Object& obj = it->second;
  if (!force && obj.lease_until > now) {
    return StoreError(ErrorCode::kObjectHasLease, "key '" + std::string(key) + "' is leased");
  }
  if (!force && obj.status != ReplicaStatus::kComplete) {
    return StoreError(ErrorCode::kReplicaIsNotReady,
                      "key '" + std::string(key) + "' is still being written");
  }
  LogRemoval(it->first);
  Erase(shard, it, now);  // even when forced, the space is held until the lease ends
  return OkStatus();
}

size_t MasterService::RemoveWhere(
    const std::function<bool(const std::string&, const Object&)>& doomed, Clock::time_point now) {
  size_t removed = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    MutexLock lock(&shard.mu);
    for (auto it = shard.objects.begin(); it != shard.objects.end();) {
      if (doomed(it->first, it->second)) {
        LogRemoval(it->first);
        it = Erase(shard, it, now);
        ++removed;
      } else {
        ++it;
      }
    }
  }
  return removed;
}

size_t MasterService::RemoveAll(bool force) {
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  return RemoveWhere(
      [now, force](const std::string&, const Object& obj) {
        return obj.status == ReplicaStatus::kComplete && (force || obj.lease_until <= now);
      },
      now);
}

Result<size_t> MasterService::RemoveByRegex(std::string_view pattern, bool force) {
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(8 << 20);
  RE2 re(pattern, opts);
  if (!re.ok()) {
    return StoreError(ErrorCode::kInvalidParams, "bad regex: " + re.error());
  }
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  return RemoveWhere(
      [now, force, &re](const std::string& key, const Object& obj) {
        return obj.status == ReplicaStatus::kComplete && (force || obj.lease_until <= now) &&
               RE2::FullMatch(key, re);
      },
      now);
}

std::vector<std::string> MasterService::ListKeys(size_t limit) const {
  std::vector<std::string> keys;
  for (size_t i = 0; i < shard_count_ && keys.size() < limit; ++i) {
    MutexLock lock(&shards_[i].mu);
    for (const auto& [key, obj] : shards_[i].objects) {
      if (keys.size() >= limit) break;
      keys.push_back(key);
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

Result<ReplicaList> MasterService::Describe(std::string_view key) const {
  Shard& shard = ShardOf(key);
  MutexLock lock(&shard.mu);
  auto it = shard.objects.find(key);
  if (it == shard.objects.end()) {
    return StoreError(ErrorCode::kObjectNotFound, "key '" + std::string(key) + "' not found");
  }
  return ReplicaList{Describe(it->second), it->second.size, it->second.lease_until};
}

size_t MasterService::Evict(Clock::time_point now) {
  // Candidates: (pinned-last, last_access, key). Collected shard by shard, then removed
  // with every condition checked again under the shard's lock.
  struct Candidate {
    bool soft_pinned;
    Clock::time_point last_access;
    std::string key;
  };
  std::vector<Candidate> candidates;
  uint64_t total = 0;
  // Disk-only objects have no memory to give back; objects with disk work are busy.
  auto evictable = [&](const Object& obj, bool* soft) {
    if (obj.status != ReplicaStatus::kComplete || obj.hard_pin || obj.lease_until > now ||
        obj.replicas.empty() || obj.work != DiskWork::kNone) {
      return false;
    }
    *soft = obj.soft_pin_until > now;
    return !*soft || options_.allow_evict_soft_pinned_objects;
  };
  for (size_t i = 0; i < shard_count_; ++i) {
    MutexLock lock(&shards_[i].mu);
    total += shards_[i].objects.size();
    for (const auto& [key, obj] : shards_[i].objects) {
      bool soft = false;
      if (evictable(obj, &soft)) candidates.push_back({soft, obj.last_access, key});
    }
  }
  if (candidates.empty()) return 0;
  size_t want = static_cast<size_t>(std::ceil(options_.eviction_ratio * total));
  want = std::clamp<size_t>(want, 1, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + want, candidates.end(),
                    [](const Candidate& a, const Candidate& b) {
                      return std::tie(a.soft_pinned, a.last_access) <
                             std::tie(b.soft_pinned, b.last_access);
                    });
  size_t evicted = 0;
  for (size_t i = 0; i < want; ++i) {
    Shard& shard = ShardOf(candidates[i].key);
    MutexLock lock(&shard.mu);
    auto it = shard.objects.find(candidates[i].key);
    bool soft = false;
    if (it == shard.objects.end() || !evictable(it->second, &soft)) continue;
    Object& obj = it->second;
    // With the SSD tier an object goes to disk instead of away; its memory is given back
    // once the disk copy exists (a later eviction).
    if (options_.offload_on_evict && StartOffload(shard, it->first, obj, now)) continue;
    LogRemoval(it->first);  // a disk-only object is not in the log
    if (obj.disk) {
      ReleaseSpace(obj, now);
      obj.replicas.clear();
    } else {
      Erase(shard, it, now);
    }
    ++evicted;
  }
  evictions_.fetch_add(evicted, std::memory_order_relaxed);
  return evicted;
}

void MasterService::Tick() {
  TickLogged();
  if (log_ && log_->SnapshotDue()) {
    Status s = Checkpoint();
    if (!s.ok()) FERRY_LOG_WARN("master: snapshot failed: {}", s.ToString());
  }
}

void MasterService::TickLogged() {
  const Clock::time_point now = Now();
  ReaderMutexLock barrier(&barrier_);
  segments_.Sweep(now);

  // PutStarts never finished: only the shards' in-progress keys are looked at.
  size_t stale = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    MutexLock lock(&shard.mu);
    for (auto k = shard.in_progress.begin(); k != shard.in_progress.end();) {
      auto it = shard.objects.find(*k);
      if (it != shard.objects.end() && it->second.status == ReplicaStatus::kProcessing &&
          now - it->second.put_start < options_.put_start_release_timeout) {
        ++k;
        continue;
      }
      k = shard.in_progress.erase(k);
      if (it != shard.objects.end() && it->second.status == ReplicaStatus::kProcessing) {
        LogRemoval(it->first);
        Erase(shard, it, now);
        ++stale;
      }
    }
    // Disk work that did not report in time.
    for (auto k = shard.disk_work.begin(); k != shard.disk_work.end();) {
      auto it = shard.objects.find(*k);
      if (it != shard.objects.end() && it->second.work != DiskWork::kNone &&
          it->second.work_until > now) {
        ++k;
        continue;
      }
      if (it != shard.objects.end() && it->second.work != DiskWork::kNone) {
        FERRY_LOG_WARN("master: disk work on '{}' timed out", it->first);
        if (it->second.work == DiskWork::kOffload) offload_failures_.fetch_add(1);
        EndDiskWork(it->second, now);
      }
      k = shard.disk_work.erase(k);
    }
  }
  put_start_released_.fetch_add(stale, std::memory_order_relaxed);

  // Silent clients.
  std::vector<std::string> silent;
  {
    MutexLock lock(&clients_mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (now - it->second >= options_.client_ttl) {
        silent.push_back(it->first);
        if (dropped_.size() < kMaxDroppedClients) dropped_.insert(it->first);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<SegmentGeneration> unmounted;
  for (const std::string& client : silent) {
    for (const std::string& seg : segments_.SegmentsOf(client)) {
      const uint64_t generation = segments_.GenerationOf(seg);
      if (segments_.Unmount(seg).ok()) {
        Log(MetadataRecord::Unmount(seg));
        unmounted.emplace_back(seg, generation);
      }
    }
    clients_dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  std::vector<std::string> silent_tiers;
  for (const std::string& client : silent) {
    if (disk_tiers_.Find(client)) silent_tiers.push_back(client);
  }
  // Restored segments whose member did not mount them again within client_ttl.
  if (awaiting_remount_.load(std::memory_order_relaxed) &&
      now - restored_at_ >= options_.client_ttl) {
    awaiting_remount_ = false;
    for (const std::string& seg : segments_.AwaitingRemount()) {
      const uint64_t generation = segments_.GenerationOf(seg);
      if (segments_.Unmount(seg).ok()) {
        FERRY_LOG_WARN(
            "master: restored segment '{}' was not mounted again within {} ms; "
            "its objects are dropped",
            seg, options_.client_ttl.count());
        Log(MetadataRecord::Unmount(seg));
        unmounted.emplace_back(seg, generation);
      }
    }
  }
  DropSegmentObjects(unmounted, now);  // one pass over the objects for every segment
  DropDiskCopies(silent_tiers, now);

  // The watermark.
  const SegmentTable::Totals t = segments_.totals();
  if (t.capacity > 0 && static_cast<double>(t.allocated) >= options_.eviction_high_watermark_ratio *
                                                                static_cast<double>(t.capacity)) {
    Evict(now);
  }
}

MasterService::Stats MasterService::stats() const {
  Stats s;
  s.keys = keys_.load(std::memory_order_relaxed);
  {
    MutexLock lock(&clients_mu_);
    s.clients = clients_.size();
  }
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.put_start_released = put_start_released_.load(std::memory_order_relaxed);
  s.clients_dropped = clients_dropped_.load(std::memory_order_relaxed);
  s.offloads = offloads_.load(std::memory_order_relaxed);
  s.offload_failures = offload_failures_.load(std::memory_order_relaxed);
  s.disk_readbacks = disk_readbacks_.load(std::memory_order_relaxed);
  s.promotions = promotions_.load(std::memory_order_relaxed);
  s.disk_evictions = disk_evictions_.load(std::memory_order_relaxed);
  s.space = segments_.totals();
  return s;
}

MasterService::TierStats MasterService::tier_stats() const {
  TierStats t;
  for (size_t i = 0; i < shard_count_; ++i) {
    MutexLock lock(&shards_[i].mu);
    for (const auto& [key, obj] : shards_[i].objects) {
      if (!obj.replicas.empty()) {
        ++t.memory_objects;
        t.memory_bytes += obj.size * obj.replicas.size();
      }
      if (obj.disk) {
        ++t.disk_objects;
        t.disk_bytes += obj.size;
        if (obj.replicas.empty()) ++t.disk_only_objects;
      }
    }
  }
  t.disk_members = disk_tiers_.members();
  return t;
}

Result<std::vector<Status>> MasterService::RegisterDiskTier(
    const DiskTierInfo& tier, const std::vector<DiskObjectInfo>& objects) {
  if (!options_.enable_offload) {
    return StoreError(ErrorCode::kUnavailableInCurrentMode,
                      "this master runs without the SSD tier (start it with --enable_offload)");
  }
  if (tier.client_id.empty() || tier.segment_name.empty() || tier.rpc_address.empty()) {
    return StoreError(ErrorCode::kInvalidParams,
                      "a disk tier needs its client, segment and rpc address");
  }
  if (segments_.SegmentsOf(tier.client_id).empty()) {
    return StoreError(ErrorCode::kInvalidParams,
                      "a disk tier needs a mounted segment of the same client");
  }
  const Clock::time_point now = Now();
  TouchClient(tier.client_id, now);
  std::shared_ptr<const DiskTierInfo> info = disk_tiers_.Register(tier);
  std::vector<Status> out;
  out.reserve(objects.size());
  for (const DiskObjectInfo& o : objects) {
    if (o.key.empty() || o.size == 0) {
      out.push_back(StoreError(ErrorCode::kInvalidParams, "empty key or size 0"));
      continue;
    }
    if (disk_tiers_.DeletePending(tier.client_id, o.key)) {
      out.push_back(StoreError(ErrorCode::kObjectAlreadyExists,
                               "key '" + o.key + "' was removed from the pool"));
      continue;
    }
    Shard& shard = ShardOf(o.key);
    MutexLock lock(&shard.mu);
    auto it = shard.objects.find(o.key);
    if (it == shard.objects.end()) {
      Object obj;
      obj.size = o.size;
      obj.status = ReplicaStatus::kComplete;
      obj.put_start = now;
      obj.last_access = now;
      obj.disk = info;
      shard.objects.emplace(o.key, std::move(obj));
      keys_.fetch_add(1, std::memory_order_relaxed);
      out.push_back(OkStatus());
      continue;
    }
    Object& obj = it->second;
    // Only this member's own copy, also one its earlier process (same directory)
    // registered: that process is gone, and its copies not listed again go when it is
    // dropped (client_ttl). A copy of an object the pool holds otherwise may be of an older
    // value under the same key (replaced while the member was away): it is refused.
    const bool mine = obj.disk && (obj.disk->client_id == tier.client_id ||
                                   (!tier.tier_id.empty() && obj.disk->tier_id == tier.tier_id));
    if (!mine || obj.status != ReplicaStatus::kComplete || obj.size != o.size) {
      out.push_back(StoreError(ErrorCode::kObjectAlreadyExists,
                               "key '" + o.key + "' holds another copy in the pool"));
      continue;
    }
    obj.disk = info;
    out.push_back(OkStatus());
  }
  return out;
}

Result<DiskTasks> MasterService::PollDiskTasks(std::string_view client_id,
                                               std::chrono::milliseconds wait, size_t max) {
  if (!disk_tiers_.Find(client_id)) {
    return StoreError(ErrorCode::kClientNotFound,
                      "no disk tier registered by this client (it registers with its re-mount)");
  }
  return disk_tiers_.Take(client_id, wait, std::max<size_t>(1, max));
}

std::vector<std::string> MasterService::ReportDiskTasks(
    std::string_view client_id, const std::vector<DiskTaskOutcome>& offloaded,
    const std::vector<DiskTaskOutcome>& promoted, const std::vector<std::string>& evicted) {
  const Clock::time_point now = Now();
  TouchClient(client_id, now);
  ReaderMutexLock barrier(&barrier_);
  const std::shared_ptr<const DiskTierInfo> tier = disk_tiers_.Find(client_id);
  std::vector<std::string> gone;
  for (const DiskTaskOutcome& o : offloaded) {
    Shard& shard = ShardOf(o.key);
    MutexLock lock(&shard.mu);
    auto it = shard.objects.find(o.key);
    const bool current = it != shard.objects.end() && it->second.work == DiskWork::kOffload &&
                         it->second.work_ticket == o.ticket;
    if (!current) {
      // Stale; unless the copy is already this member's (registered meanwhile, e.g. after
      // a master restart), the member deletes what it wrote.
      const bool kept =
          it != shard.objects.end() && it->second.disk && it->second.disk->client_id == client_id;
      if (o.status.ok() && !kept) gone.push_back(o.key);
      continue;
    }
    Object& obj = it->second;
    EndDiskWork(obj, now);
    if (!o.status.ok() || !tier) {
      obj.offload_refused = true;
      offload_failures_.fetch_add(1, std::memory_order_relaxed);
      if (o.status.ok()) gone.push_back(o.key);
      continue;
    }
    obj.disk = tier;
    offloads_.fetch_add(1, std::memory_order_relaxed);
  }
  for (const DiskTaskOutcome& o : promoted) {
    Shard& shard = ShardOf(o.key);
    MutexLock lock(&shard.mu);
    auto it = shard.objects.find(o.key);
    if (it == shard.objects.end() || it->second.work != DiskWork::kPromote ||
        it->second.work_ticket != o.ticket) {
      continue;
    }
    Object& obj = it->second;
    if (o.status.ok()) {
      obj.replicas.push_back({std::move(*obj.promoting)});
      obj.promoting.reset();
      promotions_.fetch_add(1, std::memory_order_relaxed);
      Log(PutRecord(it->first, obj));
    }
    EndDiskWork(obj, now);
    if (obj.replicas.empty() && !obj.disk) Erase(shard, it, now);
  }
  for (const std::string& key : evicted) {
    Shard& shard = ShardOf(key);
    MutexLock lock(&shard.mu);
    auto it = shard.objects.find(key);
    if (it == shard.objects.end() || !it->second.disk || it->second.disk->client_id != client_id) {
      continue;
    }
    disk_evictions_.fetch_add(1, std::memory_order_relaxed);
    ForgetDiskCopy(shard, it, now);
  }
  return gone;
}

MasterService::ObjectMap::iterator MasterService::ForgetDiskCopy(Shard& shard,
                                                                 ObjectMap::iterator it,
                                                                 Clock::time_point now) {
  Object& obj = it->second;
  obj.disk.reset();
  if (obj.work == DiskWork::kPromote) EndDiskWork(obj, now);
  return obj.replicas.empty() ? Erase(shard, it, now) : std::next(it);
}

void MasterService::DropDiskCopies(const std::vector<std::string>& clients, Clock::time_point now) {
  if (clients.empty()) return;
  for (const std::string& c : clients) disk_tiers_.Drop(c);
  auto gone = [&](const Object& obj) {
    return obj.disk &&
           std::find(clients.begin(), clients.end(), obj.disk->client_id) != clients.end();
  };
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    MutexLock lock(&shard.mu);
    for (auto it = shard.objects.begin(); it != shard.objects.end();) {
      it = gone(it->second) ? ForgetDiskCopy(shard, it, now) : std::next(it);
    }
  }
}

}  // namespace ferry::store
