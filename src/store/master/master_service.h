// MasterService: the store master's metadata logic, without any RPC around it.
//
// It keeps objects (key -> size, replicas, status, lease, pins), the segments lent to the
// pool (SegmentTable) and the clients that mounted them, and hands out space. It never
// sees object bytes. Every call is thread-safe; objects live in `shards` independently
// locked maps, so concurrent clients on different keys do not serialize on one lock.
//
// Semantics (Mooncake Store's, which its users rely on):
// - PutStart allocates `replica_num` replicas on distinct segments and records the object
//   as PROCESSING; PutEnd makes it COMPLETE (readable); PutRevoke drops it.
// - Insert mode: a PutStart of an existing key is refused with OBJECT_ALREADY_EXISTS (first
//   writer wins), unless the earlier put is still PROCESSING after
//   put_start_discard_timeout, which it then replaces. Upsert replaces a COMPLETE object.
//   A PutStart by the client already writing that key (a retry) gets the same replicas.
// - GetReplicaList and Exist grant a read lease of default_kv_lease_ttl. Remove of a leased
//   object is refused with OBJECT_HAS_LEASE unless forced.
// - No range is handed out again while any lease on it is live: space of a removed,
//   replaced or evicted object is held (SegmentTable::Release) until its lease ends.
// - Eviction: when allocated bytes reach eviction_high_watermark_ratio of capacity (in
//   Tick) or an allocation fails (in PutStart), eviction_ratio of the objects (at least one)
//   are evicted, least recently used first; leased, hard-pinned and PROCESSING objects are
//   skipped, soft-pinned ones too unless allow_evict_soft_pinned_objects (and they go after
//   unpinned ones). A PutStart that still finds no room fails with NO_AVAILABLE_HANDLE.
// - Tick also releases PutStarts older than put_start_release_timeout, and drops clients
//   that have not pinged for client_ttl: their segments are unmounted, objects whose every
//   replica was there are removed, the rest keep their other replicas. The dropped
//   client's next Ping answers need_remount.
//
// Durability (options.data_dir or an HA storage, through Create): every change a caller is
// told succeeded that must survive a restart (segment mounts and unmounts, PutStart's
// space, PutEnd, removals, PutRevoke, evictions, stale puts released) is appended to a
// MetadataLog while the lock that orders it is held;
// Sync makes everything appended so far durable, and the server calls it before replying.
// Create replays snapshot + log: segments come back awaiting remount (nothing new is placed
// on them) and objects with their ranges marked used. A Mount with the same parameters (the
// member re-mounting after its Ping answered need_remount) takes the segment back as it
// was; a restored segment not mounted again within client_ttl is unmounted, and its
// objects dropped, then. Puts in progress come back in progress (same writer, space kept,
// their timers restarted). Leases and pins' deadlines are not kept; every restored COMPLETE
// object is leased for default_kv_lease_ttl from the restore instead (covering the leases
// the last master granted). Tick
// writes a snapshot when the log is long.
//
// The SSD tier (options.enable_offload; docs/store.md, "SSD tier"): members that lend a
// disk register it (RegisterDiskTier, also listing the objects their disk already holds)
// and take work from PollDiskTasks. An object has at most one disk copy (LOCAL_DISK), on
// the member whose segment held its memory copy when it was offloaded.
// - Offload: with offload_on_evict, eviction does not drop an object that has no disk copy
//   while its member has a tier: it queues an offload and drops the memory copy once the
//   member reports the disk copy (an object with a disk copy only loses its memory copy).
//   With eager_offload, every object is queued at PutEnd. An object being offloaded or
//   promoted is not evicted, and its space is held until the work reports or times out
//   (offload_timeout). A member that fails an offload (disk full) leaves the object to
//   plain eviction.
// - Read-back: GetReplicaList lists the disk copy after the memory ones; the reader asks
//   the owner for the bytes. With promotion_on_hit, the promotion_admission_threshold-th
//   read of a disk-only object allocates memory space (the owner's segment first) and asks
//   the owner to copy the bytes there; the copy becomes a memory replica when it reports.
// - Removal of an object deletes its disk copy (a task for the owner); a member that
//   evicts disk copies reports them first; a member dropped (client_ttl) or unmounted takes
//   its disk copies with it.
// - Durability: disk copies are soft state, not logged: members register them again after
//   a master restart (NEED_REMOUNT). An object that lost its memory copy is logged as
//   removed; one promoted back is logged as a put.
//
// Time comes from options.clock, so tests drive it without sleeping.
//
//   ferry::store::MasterService m(ferry::store::MasterServiceOptions{});
//   (void)m.MountSegment({.id = "s1", .name = "h:1", .hostname = "h", .base = 4096,
//                         .size = 1 << 20, .client_id = "c1"});
//   auto r = m.PutStart("k", 100, ferry::store::ReplicateConfig{}, "c1", "h",
//                       ferry::store::PutMode::kInsert);
//   if (r.ok()) (void)m.PutEnd("k", "c1");
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "ferry/status.h"
#include "store/master/disk_tier_table.h"
#include "store/master/metadata_log.h"
#include "store/master/segment_table.h"
#include "store/store_types.h"

namespace ferry::store {

struct MasterServiceOptions {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds default_kv_lease_ttl{10000};
  std::chrono::milliseconds default_kv_soft_pin_ttl{30 * 60 * 1000};
  bool allow_evict_soft_pinned_objects = true;
  double eviction_high_watermark_ratio = 0.90;
  double eviction_ratio = 0.05;
  std::chrono::milliseconds client_ttl{10000};
  std::chrono::seconds put_start_discard_timeout{30};
  std::chrono::seconds put_start_release_timeout{600};
  size_t shards = 64;
  uint64_t alignment = 64;
  // The master's clock; steady_clock::now when empty.
  std::function<Clock::time_point()> clock;
  // Where the metadata log and snapshots live (MasterService::Create); "" keeps everything
  // in memory only. Default: "".
  std::string data_dir;
  // A snapshot is written (by Tick) after this many log records. Default: 100000.
  uint64_t snapshot_every_records = 100000;
  // The SSD tier (see above). Default: off.
  bool enable_offload = false;
  // Eviction offloads objects that have no disk copy instead of dropping them. Default: on.
  bool offload_on_evict = true;
  // Every object is offloaded after its PutEnd. Default: off.
  bool eager_offload = false;
  // Disk-only objects read often enough get a memory replica again. Default: off.
  bool promotion_on_hit = false;
  // Reads of a disk-only object that trigger its promotion. Default: 2.
  uint32_t promotion_admission_threshold = 2;
  // How long an offload or promotion may take before the master gives up on it. Default:
  // 30 s.
  std::chrono::milliseconds offload_timeout{30000};
};

// An object a member's disk holds, as RegisterDiskTier lists it.
struct DiskObjectInfo {
  std::string key;
  uint64_t size = 0;
};

// A member's report of one task (PollDiskTasks): the task's key and ticket, and how it went.
struct DiskTaskOutcome {
  std::string key;
  uint64_t ticket = 0;
  Status status;
};

// What GetReplicaList returns: the COMPLETE replicas and until when the caller may read.
struct ReplicaList {
  std::vector<ReplicaDescriptor> replicas;
  uint64_t size = 0;
  std::chrono::steady_clock::time_point lease_until;
};

class MasterService {
 public:
  using Clock = std::chrono::steady_clock;

  // A master that keeps everything in memory (options.data_dir is not looked at).
  explicit MasterService(MasterServiceOptions options);
  // With `storage` (HA: EtcdLogStorage) or else options.data_dir: recovers from it and logs
  // to it (see above); with neither, as the constructor. Errors: the storage's Load (where
  // a corrupt record is).
  static Result<std::unique_ptr<MasterService>> Create(
      MasterServiceOptions options, std::unique_ptr<LogStorage> storage = nullptr);
  ~MasterService();

  MasterService(const MasterService&) = delete;
  MasterService& operator=(const MasterService&) = delete;

  // Segments. Mount also registers (and pings) the client.
  Status MountSegment(const SegmentInfo& segment);
  // Unmounts and drops what lived only there. kSegmentNotFound if absent; kInvalidParams if
  // `client_id` did not mount it.
  Status UnmountSegment(std::string_view segment_id, std::string_view client_id);

  // Keeps `client_id` alive. Returns true when the master did not know the client (it was
  // dropped for missing pings, or this master started after it mounted) and the client
  // must mount its segments again (NEED_REMOUNT). A client's first Ping also answers true.
  bool Ping(std::string_view client_id);

  // Objects.
  Result<std::vector<ReplicaDescriptor>> PutStart(std::string_view key, uint64_t size,
                                                  const ReplicateConfig& config,
                                                  std::string_view client_id,
                                                  std::string_view writer_hostname, PutMode mode);
  Status PutEnd(std::string_view key, std::string_view client_id);
  Status PutRevoke(std::string_view key, std::string_view client_id);
  Result<ReplicaList> GetReplicaList(std::string_view key);
  // OK for a COMPLETE object (and grants a lease); kReplicaIsNotReady while PROCESSING,
  // kObjectNotFound when absent. One lookup either way (BatchExist's hot path).
  Status Exist(std::string_view key);
  Status Remove(std::string_view key, bool force);
  // Removes every COMPLETE object without a live lease (with `force`, leased ones too: their
  // space is still held until the lease ends); returns how many.
  size_t RemoveAll(bool force = false);
  // Removes the COMPLETE objects whose key fully matches `pattern` (RE2 syntax: linear time
  // whatever the pattern), leased ones only with `force`, as RemoveAll. kInvalidParams for
  // a pattern RE2 refuses.
  Result<size_t> RemoveByRegex(std::string_view pattern, bool force = false);
  std::vector<std::string> ListKeys(size_t limit) const;
  // One key's metadata for the HTTP /query_key page, kObjectNotFound if absent.
  Result<ReplicaList> Describe(std::string_view key) const;

  // --- The SSD tier ---
  // Registers (or refreshes) `tier`'s disk and the objects on it: one result per object,
  // OK (readable from that disk from now on) or kObjectAlreadyExists (the pool holds
  // another value, or it is being written: the member deletes its copy). kInvalidParams
  // (and nothing registered) without enable_offload or for a client with no segment.
  Result<std::vector<Status>> RegisterDiskTier(const DiskTierInfo& tier,
                                               const std::vector<DiskObjectInfo>& objects);
  // The member's queued tasks, waiting up to `wait` while there are none. kClientNotFound
  // for a member without a registered tier (it registers again after its re-mount).
  Result<DiskTasks> PollDiskTasks(std::string_view client_id, std::chrono::milliseconds wait,
                                  size_t max);
  // The member's outcomes. Returns the offloaded keys the pool no longer wants on disk
  // (removed or replaced meanwhile, or already on another disk): the member deletes them.
  std::vector<std::string> ReportDiskTasks(std::string_view client_id,
                                           const std::vector<DiskTaskOutcome>& offloaded,
                                           const std::vector<DiskTaskOutcome>& promoted,
                                           const std::vector<std::string>& evicted);
  // Offloads queued or running: while any is, a put refused for want of space may succeed
  // soon (the server answers it UNAVAILABLE, which clients retry).
  uint64_t offloads_in_flight() const { return offloads_in_flight_.load(); }
  // Wakes every PollDiskTasks (the server is stopping).
  void ShutdownDiskTier() { disk_tiers_.Shutdown(); }

  // Housekeeping, called by the server about every 100 ms: held space, stale puts, silent
  // clients, restored segments not mounted again, the eviction watermark, the snapshot.
  void Tick();

  // Returns once every change made before the call is durable (at once without a data_dir).
  // Internal when the log cannot be written, DeadlineExceeded when the disk does not answer.
  Status Sync();
  // Writes a snapshot now and starts a new log (Tick does it when the log is long). Changes
  // wait only for the log's rotation (one sync), not for the copy. OK without a data_dir.
  Status Checkpoint();
  // OK, or why the log failed (every change is refused from then on). OK without a log.
  Status LogHealth() const;
  // The log's counters; nullopt without a data_dir.
  std::optional<MetadataLog::Stats> log_stats() const;

  std::vector<SegmentInfo> Segments() const { return segments_.List(); }
  // Changes whenever a segment is mounted or unmounted (PingReply.view_version).
  uint64_t view_version() const { return segments_.view_version(); }

  struct Stats {
    uint64_t keys = 0;
    uint64_t clients = 0;
    uint64_t evictions = 0;
    uint64_t put_start_released = 0;
    uint64_t clients_dropped = 0;
    uint64_t offloads = 0, offload_failures = 0, disk_readbacks = 0, promotions = 0;
    uint64_t disk_evictions = 0;
    SegmentTable::Totals space;
  };
  Stats stats() const;
  // Objects and bytes per tier (a pass over every object: for the metrics page).
  struct TierStats {
    uint64_t memory_objects = 0, memory_bytes = 0;  // bytes: size x memory replicas
    uint64_t disk_objects = 0, disk_bytes = 0, disk_only_objects = 0;
    uint64_t disk_members = 0;
  };
  TierStats tier_stats() const;

 private:
  struct Replica {
    AllocatedRange range;
  };
  enum class DiskWork : uint8_t { kNone, kOffload, kPromote };
  struct Object {
    uint64_t size = 0;
    std::vector<Replica> replicas;
    ReplicaStatus status = ReplicaStatus::kProcessing;
    std::string writer;  // the client writing it; cleared once COMPLETE
    Clock::time_point put_start;
    Clock::time_point last_access;
    Clock::time_point lease_until;     // no lease when <= now
    Clock::time_point soft_pin_until;  // no soft pin when <= now
    bool hard_pin = false;
    // The SSD tier. `disk`: the member holding the disk copy (null: none). `work`: an
    // offload or promotion in flight until `work_until`, answered by `work_ticket`;
    // meanwhile the object is not evicted and its space is held. `promoting`: the space a
    // promotion writes. `disk_reads`: reads of the disk-only object since the last
    // promotion. `offload_refused`: its member failed to offload it.
    std::shared_ptr<const DiskTierInfo> disk;
    DiskWork work = DiskWork::kNone;
    bool offload_refused = false;
    uint32_t disk_reads = 0;
    uint64_t work_ticket = 0;
    Clock::time_point work_until;
    std::optional<AllocatedRange> promoting;
  };
  // Looked up by string_view without building a std::string per call.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  using ObjectMap = std::unordered_map<std::string, Object, KeyHash, std::equal_to<>>;
  struct Shard {
    mutable Mutex mu;
    ObjectMap objects FERRY_GUARDED_BY(mu);
    // Keys whose object is PROCESSING, so that the stale-put sweep never walks every
    // object. May hold keys already gone; the sweep drops those.
    std::unordered_set<std::string> in_progress FERRY_GUARDED_BY(mu);
    // Keys with disk work in flight, for Tick's timeout sweep; may hold keys already gone.
    std::unordered_set<std::string> disk_work FERRY_GUARDED_BY(mu);
  };
  using SegmentGeneration = std::pair<std::string, uint64_t>;

  Clock::time_point Now() const;
  Shard& ShardOf(std::string_view key) const;
  // The PROCESSING object `client_id` is writing under `key` (REQUIRES shard.mu), or
  // objects.end() with *error set to kObjectNotFound.
  ObjectMap::iterator FindPutInProgress(Shard& shard, std::string_view key,
                                        std::string_view client_id, Status* error)
      FERRY_REQUIRES(shard.mu);
  // Returns the object's space to the segments (held until its lease ends, and until its
  // disk work's deadline).
  void ReleaseSpace(const Object& obj, Clock::time_point now);
  // Erases the object (REQUIRES shard.mu; the caller logs the removal where it must):
  // returns its space, ends its disk work, deletes its disk copy. Returns the next entry.
  ObjectMap::iterator Erase(Shard& shard, ObjectMap::iterator it, Clock::time_point now)
      FERRY_REQUIRES(shard.mu);
  // Queues an offload of `key` to the member whose segment holds its memory copy, when
  // that member has a disk tier (REQUIRES shard.mu). Returns whether it did.
  bool StartOffload(Shard& shard, const std::string& key, Object& obj, Clock::time_point now)
      FERRY_REQUIRES(shard.mu);
  // Clears the object's disk work (REQUIRES shard.mu), releasing a promotion's space.
  void EndDiskWork(Object& obj, Clock::time_point now);
  // A read of a disk-only object: counts it and starts a promotion when due. The caller
  // holds the shard lock of `key`.
  void NoteDiskRead(const std::string& key, Object& obj, Clock::time_point now);
  // Drops the object's disk copy (REQUIRES shard.mu) and its promotion, the object too when
  // no memory copy is left. Returns the next entry.
  ObjectMap::iterator ForgetDiskCopy(Shard& shard, ObjectMap::iterator it, Clock::time_point now)
      FERRY_REQUIRES(shard.mu);
  // Drops the disk copies on these members' tiers; objects left with no copy go.
  void DropDiskCopies(const std::vector<std::string>& clients, Clock::time_point now);
  std::vector<ReplicaDescriptor> Describe(const Object& obj) const;
  // Removes (space held for leases) every object `doomed` picks; returns how many.
  size_t RemoveWhere(const std::function<bool(const std::string&, const Object&)>& doomed,
                     Clock::time_point now);
  // Evicts per the policy; returns how many objects went.
  size_t Evict(Clock::time_point now);
  // Drops these segments' replicas: objects left with none, or still PROCESSING, go.
  void DropSegmentObjects(const std::vector<SegmentGeneration>& gone_segments,
                          Clock::time_point now);
  void TouchClient(std::string_view client_id, Clock::time_point now);
  // Tick without the snapshot (which needs barrier_ exclusively).
  void TickLogged();
  // Appends to the log, if there is one.
  void Log(const MetadataRecord& record);
  // Logs the removal of an object (COMPLETE or PROCESSING: both are in the log).
  void LogRemoval(const std::string& key);
  MetadataRecord PutRecord(const std::string& key, const Object& obj) const;
  // Create's replay: segments awaiting remount, objects with their ranges.
  void Restore(const RecoveredMetadata& state);

  const MasterServiceOptions options_;
  std::unique_ptr<MetadataLog> log_;  // set once, by Create
  // Changes that are logged hold it shared (taken before any shard lock); Checkpoint holds
  // it exclusively while it rotates the log.
  SharedMutex barrier_;
  // One Checkpoint at a time: an older snapshot must never be renamed over a newer one.
  Mutex checkpoint_mu_;
  Clock::time_point restored_at_;
  std::atomic<bool> awaiting_remount_{false};  // restored segments not checked yet
  SegmentTable segments_;
  const size_t shard_count_;  // options_.shards, at least 1
  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint64_t> keys_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> put_start_released_{0};
  std::atomic<uint64_t> clients_dropped_{0};
  DiskTierTable disk_tiers_;
  std::atomic<uint64_t> next_ticket_{1};
  std::atomic<uint64_t> offloads_in_flight_{0};
  std::atomic<uint64_t> offloads_{0}, offload_failures_{0}, disk_readbacks_{0}, promotions_{0};
  std::atomic<uint64_t> disk_evictions_{0};

  mutable Mutex clients_mu_;
  std::unordered_map<std::string, Clock::time_point> clients_ FERRY_GUARDED_BY(clients_mu_);
  std::unordered_set<std::string> dropped_ FERRY_GUARDED_BY(clients_mu_);
};

}  // namespace ferry::store
