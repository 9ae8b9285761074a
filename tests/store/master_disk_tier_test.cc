// MasterService's SSD tier (master_service.h, "The SSD tier"): offload on eviction and
// eagerly, promotion, stale outcomes, registration after a restart, disk evictions, failed
// offloads, timeouts, members dropped. The member's side is played by the test.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/error_code.h"
#include "store/master/master_service.h"

namespace ferry::store {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kSegment = 1 << 20;
constexpr uint64_t kObject = 256 << 10;  // four fill the segment

class MasterDiskTierTest : public ::testing::Test {
 protected:
  MasterDiskTierTest() { Reset(Options()); }

  static MasterServiceOptions Options() {
    MasterServiceOptions o;
    o.enable_offload = true;
    o.eviction_ratio = 0.25;  // one of four objects per eviction round
    return o;
  }
  void Reset(MasterServiceOptions opts) {
    opts.clock = [this] { return now_; };
    m_ = std::make_unique<MasterService>(std::move(opts));
    ASSERT_TRUE(m_->MountSegment({"s1", "m1:1", "h1", 1ull << 32, kSegment, "c1"}).ok());
  }
  Status RegisterTier(const std::vector<DiskObjectInfo>& objects = {}) {
    auto r = m_->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", ""}, objects);
    if (!r.ok()) return r.status();
    for (const Status& s : *r) {
      if (!s.ok()) return s;
    }
    return OkStatus();
  }
  void Advance(milliseconds d) { now_ += d; }
  // Each put a millisecond after the last, so that eviction's LRU order is the put order.
  Status Put(const std::string& key, uint64_t size = kObject) {
    Advance(milliseconds(1));
    auto r = m_->PutStart(key, size, {}, "c2", "h2", PutMode::kInsert);
    if (!r.ok()) return r.status();
    return m_->PutEnd(key, "c2");
  }
  DiskTasks Poll() {
    auto t = m_->PollDiskTasks("c1", milliseconds(0), 100);
    return t.ok() ? std::move(*t) : DiskTasks{};
  }
  // Reports every offload in `tasks` as written.
  std::vector<std::string> Offloaded(const DiskTasks& tasks, Status outcome = OkStatus()) {
    std::vector<DiskTaskOutcome> done;
    for (const OffloadTask& t : tasks.offloads) done.push_back({t.key, t.ticket, outcome});
    return m_->ReportDiskTasks("c1", done, {}, {});
  }
  std::vector<ReplicaTier> Tiers(const std::string& key) {
    std::vector<ReplicaTier> out;
    auto d = m_->Describe(key);
    if (d.ok()) {
      for (const ReplicaDescriptor& r : d->replicas) out.push_back(r.tier);
    }
    return out;
  }

  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::unique_ptr<MasterService> m_;
};

TEST_F(MasterDiskTierTest, EvictionOffloadsFirstAndThenDropsOnlyTheMemoryCopy) {
  ASSERT_TRUE(RegisterTier().ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Put("k" + std::to_string(i)).ok());
  Advance(milliseconds(20000));  // past every lease
  // No room: the least recently used object is queued for offload instead of dropped.
  EXPECT_EQ(ErrorCodeOf(Put("k4")), ErrorCode::kNoAvailableHandle);
  EXPECT_EQ(m_->offloads_in_flight(), 1u);
  DiskTasks tasks = Poll();
  ASSERT_EQ(tasks.offloads.size(), 1u);
  const OffloadTask t = tasks.offloads[0];
  EXPECT_EQ(t.key, "k0");
  EXPECT_EQ(t.size, kObject);
  EXPECT_GE(t.address, 1ull << 32);
  EXPECT_TRUE(Offloaded(tasks).empty());
  EXPECT_EQ(m_->offloads_in_flight(), 0u);
  EXPECT_EQ(Tiers("k0"), (std::vector{ReplicaTier::kMemory, ReplicaTier::kLocalDisk}));
  // Now the disk copy lets eviction give the memory back.
  ASSERT_TRUE(Put("k4").ok());
  EXPECT_EQ(Tiers("k0"), std::vector{ReplicaTier::kLocalDisk});
  auto list = m_->GetReplicaList("k0");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->replicas.size(), 1u);
  EXPECT_EQ(list->replicas[0].disk_owner, "m1:1");
  EXPECT_EQ(list->replicas[0].disk_rpc_address, "m1:2");
  EXPECT_EQ(list->replicas[0].disk_size, kObject);
  EXPECT_TRUE(m_->Exist("k0").ok());
  const MasterService::TierStats ts = m_->tier_stats();
  EXPECT_EQ(ts.disk_only_objects, 1u);
  EXPECT_EQ(ts.memory_objects, 4u);
  EXPECT_EQ(m_->stats().offloads, 1u);
  EXPECT_EQ(m_->stats().disk_readbacks, 1u);
}

TEST_F(MasterDiskTierTest, AMemberWithoutATierLosesEvictedObjectsAsBefore) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Put("k" + std::to_string(i)).ok());
  Advance(milliseconds(20000));
  ASSERT_TRUE(Put("k4").ok());
  EXPECT_EQ(ErrorCodeOf(m_->Exist("k0")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(m_->offloads_in_flight(), 0u);
}

TEST_F(MasterDiskTierTest, PromotionAfterTheThresholdMakesAMemoryReplica) {
  MasterServiceOptions o = Options();
  o.promotion_on_hit = true;
  o.promotion_admission_threshold = 2;
  Reset(o);
  ASSERT_TRUE(RegisterTier({{"cold", kObject}}).ok());
  EXPECT_EQ(Tiers("cold"), std::vector{ReplicaTier::kLocalDisk});
  ASSERT_TRUE(m_->GetReplicaList("cold").ok());
  EXPECT_TRUE(Poll().promotions.empty());
  ASSERT_TRUE(m_->GetReplicaList("cold").ok());
  DiskTasks tasks = Poll();
  ASSERT_EQ(tasks.promotions.size(), 1u);
  const PromoteTask p = tasks.promotions[0];
  EXPECT_EQ(p.dest.segment_name, "m1:1");  // the owner's own segment first
  EXPECT_EQ(p.dest.length, kObject);
  EXPECT_EQ(m_->stats().space.allocated, kObject);
  // A stale ticket changes nothing; the right one adds the replica.
  m_->ReportDiskTasks("c1", {}, {{"cold", p.ticket + 1, OkStatus()}}, {});
  EXPECT_EQ(Tiers("cold"), std::vector{ReplicaTier::kLocalDisk});
  m_->ReportDiskTasks("c1", {}, {{"cold", p.ticket, OkStatus()}}, {});
  EXPECT_EQ(Tiers("cold"), (std::vector{ReplicaTier::kMemory, ReplicaTier::kLocalDisk}));
  auto list = m_->GetReplicaList("cold");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->replicas[0].buffers[0].address, p.dest.address);
  EXPECT_EQ(m_->stats().promotions, 1u);
  EXPECT_EQ(m_->stats().disk_readbacks, 2u);  // the memory copy serves the third read
}

TEST_F(MasterDiskTierTest, AFailedPromotionGivesItsSpaceBack) {
  MasterServiceOptions o = Options();
  o.promotion_on_hit = true;
  o.promotion_admission_threshold = 1;
  Reset(o);
  ASSERT_TRUE(RegisterTier({{"cold", kObject}}).ok());
  ASSERT_TRUE(m_->GetReplicaList("cold").ok());
  DiskTasks tasks = Poll();
  ASSERT_EQ(tasks.promotions.size(), 1u);
  m_->ReportDiskTasks("c1", {},
                      {{"cold", tasks.promotions[0].ticket,
                        StoreError(ErrorCode::kFileReadFail, "checksum mismatch")}},
                      {});
  EXPECT_EQ(Tiers("cold"), std::vector{ReplicaTier::kLocalDisk});
  Advance(milliseconds(20000));
  m_->Tick();  // the space was held for the read lease; now it is free
  EXPECT_EQ(m_->stats().space.allocated, 0u);
}

TEST_F(MasterDiskTierTest, AnOutcomeForAnObjectRemovedMeanwhileIsGone) {
  MasterServiceOptions o = Options();
  o.eager_offload = true;
  Reset(o);
  ASSERT_TRUE(RegisterTier().ok());
  ASSERT_TRUE(Put("k").ok());
  DiskTasks tasks = Poll();
  ASSERT_EQ(tasks.offloads.size(), 1u);  // queued at PutEnd
  ASSERT_TRUE(m_->Remove("k", /*force=*/true).ok());
  EXPECT_EQ(m_->offloads_in_flight(), 0u);
  EXPECT_EQ(Offloaded(tasks), std::vector<std::string>{"k"});
  // A disk copy of a removed object is deleted through a task.
  ASSERT_TRUE(Put("j").ok());
  EXPECT_TRUE(Offloaded(Poll()).empty());
  ASSERT_TRUE(m_->Remove("j", /*force=*/true).ok());
  EXPECT_EQ(Poll().deletes, std::vector<std::string>{"j"});
  // A stale report for a copy this member has registered since (a master restart) keeps it.
  ASSERT_TRUE(RegisterTier({{"a", 10}}).ok());
  EXPECT_TRUE(m_->ReportDiskTasks("c1", {{"a", 12345, OkStatus()}}, {}, {}).empty());
  EXPECT_EQ(Tiers("a"), std::vector{ReplicaTier::kLocalDisk});
}

TEST_F(MasterDiskTierTest, AReplacedObjectIgnoresTheOldOffload) {
  MasterServiceOptions o = Options();
  o.eager_offload = true;
  Reset(o);
  ASSERT_TRUE(RegisterTier().ok());
  ASSERT_TRUE(Put("k").ok());
  DiskTasks old = Poll();
  ASSERT_TRUE(m_->PutStart("k", kObject, {}, "c2", "h2", PutMode::kUpsert).ok());
  ASSERT_TRUE(m_->PutEnd("k", "c2").ok());
  EXPECT_EQ(Offloaded(old), std::vector<std::string>{"k"});
  EXPECT_EQ(Tiers("k"), std::vector{ReplicaTier::kMemory});
  EXPECT_EQ(Poll().offloads.size(), 1u);  // the new value's own offload
}

TEST_F(MasterDiskTierTest, RegistrationAfterARestartRecreatesDiskOnlyObjects) {
  ASSERT_TRUE(Put("mem").ok());
  auto r = m_->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", ""},
                                {{"a", 100}, {"mem", kObject}, {"mem2", 5}, {"", 3}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_TRUE((*r)[0].ok());
  // The pool holds "mem" already: the disk's copy may be of an older value, refused.
  EXPECT_EQ(ErrorCodeOf((*r)[1]), ErrorCode::kObjectAlreadyExists);
  EXPECT_TRUE((*r)[2].ok());
  EXPECT_EQ(ErrorCodeOf((*r)[3]), ErrorCode::kInvalidParams);
  EXPECT_EQ(Tiers("a"), std::vector{ReplicaTier::kLocalDisk});
  EXPECT_EQ(Tiers("mem"), std::vector{ReplicaTier::kMemory});
  // Registering its own copy again is fine; another size is not.
  auto again = m_->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", ""}, {{"a", 100}});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)[0].ok());
  again = m_->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", ""}, {{"a", 101}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ErrorCodeOf((*again)[0]), ErrorCode::kObjectAlreadyExists);
  // Without the tier, or without a segment, registration is refused.
  EXPECT_FALSE(m_->RegisterDiskTier({"c9", "m9:1", "h9", "m9:2", ""}, {}).ok());
  Reset(MasterServiceOptions{});
  EXPECT_EQ(ErrorCodeOf(RegisterTier()), ErrorCode::kUnavailableInCurrentMode);
}

TEST_F(MasterDiskTierTest, AFailedOffloadLeavesTheObjectToPlainEviction) {
  ASSERT_TRUE(RegisterTier().ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Put("k" + std::to_string(i)).ok());
  Advance(milliseconds(20000));
  EXPECT_FALSE(Put("k4").ok());
  EXPECT_TRUE(Offloaded(Poll(), StoreError(ErrorCode::kFileWriteFail, "disk full")).empty());
  EXPECT_EQ(m_->stats().offload_failures, 1u);
  // k0 is now evicted like any object of a member without a tier.
  ASSERT_TRUE(Put("k4").ok());
  EXPECT_EQ(ErrorCodeOf(m_->Exist("k0")), ErrorCode::kObjectNotFound);
  EXPECT_TRUE(Poll().offloads.empty());
  // The next one still goes to disk first.
  EXPECT_FALSE(Put("k5").ok());
  DiskTasks next = Poll();
  ASSERT_EQ(next.offloads.size(), 1u);
  EXPECT_EQ(next.offloads[0].key, "k1");
  Offloaded(next);
  ASSERT_TRUE(Put("k5").ok());
  EXPECT_EQ(Tiers("k1"), std::vector{ReplicaTier::kLocalDisk});
}

TEST_F(MasterDiskTierTest, DiskEvictionsAndDroppedMembersTakeTheirCopies) {
  MasterServiceOptions o = Options();
  o.eager_offload = true;
  Reset(o);
  ASSERT_TRUE(RegisterTier({{"disk", 10}, {"gone", 10}}).ok());
  ASSERT_TRUE(Put("both").ok());
  EXPECT_TRUE(Offloaded(Poll()).empty());
  m_->ReportDiskTasks("c1", {}, {}, {"both", "disk", "not-there"});
  EXPECT_EQ(Tiers("both"), std::vector{ReplicaTier::kMemory});
  EXPECT_EQ(ErrorCodeOf(m_->Exist("disk")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(m_->stats().disk_evictions, 2u);
  // The member goes silent: its segment and its disk copies go with it.
  Advance(milliseconds(20000));
  m_->Tick();
  EXPECT_EQ(ErrorCodeOf(m_->Exist("gone")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(ErrorCodeOf(m_->Exist("both")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(m_->tier_stats().disk_members, 0u);
}

TEST_F(MasterDiskTierTest, AMemberRestartedOnItsDirectoryTakesItsCopiesOver) {
  ASSERT_TRUE(
      m_->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", "dir-1"}, {{"a", 10}, {"b", 10}}).ok());
  ASSERT_TRUE(Put("mem").ok());
  m_->ReportDiskTasks("c1", {}, {}, {});
  ASSERT_TRUE(m_->Remove("b", /*force=*/true).ok());  // a delete queued for the old process
  // The new process: another client id and segment, the same directory, "a" still there,
  // and "b", whose delete it inherits (so it is refused).
  ASSERT_TRUE(m_->MountSegment({"s3", "m3:1", "h1", 1ull << 40, kSegment, "c3"}).ok());
  auto r = m_->RegisterDiskTier({"c3", "m3:1", "h1", "m3:2", "dir-1"}, {{"a", 10}, {"b", 10}});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
  EXPECT_EQ(ErrorCodeOf((*r)[1]), ErrorCode::kObjectAlreadyExists);
  auto list = m_->GetReplicaList("a");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->replicas.back().disk_rpc_address, "m3:2");
  auto tasks = m_->PollDiskTasks("c3", milliseconds(0), 10);
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(tasks->deletes, std::vector<std::string>{"b"});
  EXPECT_EQ(ErrorCodeOf(m_->PollDiskTasks("c1", milliseconds(0), 10).status()),
            ErrorCode::kClientNotFound);  // the earlier process's tier is gone
  EXPECT_EQ(m_->tier_stats().disk_members, 1u);
  // The old process's client times out; the copies it handed over stay.
  Advance(milliseconds(6000));
  ASSERT_FALSE(m_->Ping("c3"));
  Advance(milliseconds(6000));
  m_->Tick();
  EXPECT_TRUE(m_->Exist("a").ok());
}

TEST_F(MasterDiskTierTest, AnUnmountedMemberTakesItsDiskCopies) {
  ASSERT_TRUE(RegisterTier({{"disk", 10}}).ok());
  ASSERT_TRUE(m_->UnmountSegment("s1", "c1").ok());
  EXPECT_EQ(ErrorCodeOf(m_->Exist("disk")), ErrorCode::kObjectNotFound);
  EXPECT_TRUE(Poll().offloads.empty());
}

TEST_F(MasterDiskTierTest, AnOffloadNotReportedInTimeIsAbandoned) {
  MasterServiceOptions o = Options();
  o.eager_offload = true;
  o.offload_timeout = milliseconds(1000);
  o.client_ttl = milliseconds(60000);
  Reset(o);
  ASSERT_TRUE(RegisterTier().ok());
  ASSERT_TRUE(Put("k").ok());
  DiskTasks tasks = Poll();
  ASSERT_EQ(m_->offloads_in_flight(), 1u);
  Advance(milliseconds(1500));
  m_->Tick();
  EXPECT_EQ(m_->offloads_in_flight(), 0u);
  EXPECT_EQ(m_->stats().offload_failures, 1u);
  // The late report is stale: the member deletes what it wrote.
  EXPECT_EQ(Offloaded(tasks), std::vector<std::string>{"k"});
  EXPECT_EQ(Tiers("k"), std::vector{ReplicaTier::kMemory});
}

TEST_F(MasterDiskTierTest, DiskOnlyObjectsStayOutOfTheLog) {
  const std::string dir =
      ::testing::TempDir() + "/disk_tier_log_" + std::to_string(reinterpret_cast<uintptr_t>(this));
  MasterServiceOptions o = Options();
  o.data_dir = dir;
  o.clock = [this] { return now_; };
  {
    auto m = MasterService::Create(o);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE((*m)->MountSegment({"s1", "m1:1", "h1", 1ull << 32, kSegment, "c1"}).ok());
    ASSERT_TRUE((*m)->RegisterDiskTier({"c1", "m1:1", "h1", "m1:2", ""}, {{"disk", 10}}).ok());
    ASSERT_TRUE((*m)->Checkpoint().ok());
    ASSERT_TRUE((*m)->Sync().ok());
  }
  {
    auto m = MasterService::Create(o);
    ASSERT_TRUE(m.ok());
    // The member registers it again after its re-mount.
    EXPECT_EQ(ErrorCodeOf((*m)->Exist("disk")), ErrorCode::kObjectNotFound);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::store
