#include "store/master/master_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/error_code.h"

namespace ferry::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A MasterService on a clock the test moves by hand.
class MasterServiceTest : public ::testing::Test {
 protected:
  MasterServiceTest() { Reset(MasterServiceOptions{}); }

  void Reset(MasterServiceOptions opts) {
    opts.clock = [this] { return now_; };
    m_ = std::make_unique<MasterService>(std::move(opts));
  }
  void Advance(std::chrono::milliseconds d) { now_ += d; }
  void Mount(const std::string& id, uint64_t size, const std::string& client = "c1") {
    ASSERT_TRUE(m_->MountSegment({id, id + ":17000", "host-" + id, 1ull << 32, size, client}).ok());
  }
  Status Put(const std::string& key, uint64_t size, ReplicateConfig cfg = {},
             PutMode mode = PutMode::kInsert) {
    auto r = m_->PutStart(key, size, cfg, "c1", "h", mode);
    if (!r.ok()) return r.status();
    return m_->PutEnd(key, "c1");
  }

  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::unique_ptr<MasterService> m_;
};

TEST_F(MasterServiceTest, PutGetRoundTripGivesTheAllocatedReplica) {
  Mount("s1", 1 << 20);
  auto r = m_->PutStart("k", 1000, {}, "c1", "h", PutMode::kInsert);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].status, ReplicaStatus::kProcessing);
  ASSERT_EQ((*r)[0].buffers.size(), 1u);
  EXPECT_EQ((*r)[0].buffers[0].segment_name, "s1:17000");
  EXPECT_EQ((*r)[0].buffers[0].length, 1000u);
  EXPECT_EQ(ErrorCodeOf(m_->GetReplicaList("k").status()), ErrorCode::kReplicaIsNotReady);
  EXPECT_EQ(ErrorCodeOf(m_->Exist("k")), ErrorCode::kReplicaIsNotReady);
  EXPECT_EQ(ErrorCodeOf(m_->Exist("missing")), ErrorCode::kObjectNotFound);
  ASSERT_TRUE(m_->PutEnd("k", "c1").ok());
  auto g = m_->GetReplicaList("k");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->size, 1000u);
  EXPECT_EQ(g->replicas[0].status, ReplicaStatus::kComplete);
  EXPECT_EQ(g->replicas[0].buffers[0].address, (*r)[0].buffers[0].address);
  EXPECT_EQ(g->lease_until, now_ + milliseconds(10000));
  EXPECT_TRUE(m_->Exist("k").ok());
  EXPECT_EQ(m_->stats().keys, 1u);
}

TEST_F(MasterServiceTest, BadArgumentsAreInvalidParams) {
  Mount("s1", 1 << 20);
  EXPECT_EQ(ErrorCodeOf(m_->PutStart("", 10, {}, "c1", "h", PutMode::kInsert).status()),
            ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(m_->PutStart("k", 0, {}, "c1", "h", PutMode::kInsert).status()),
            ErrorCode::kInvalidParams);
  ReplicateConfig none;
  none.replica_num = 0;
  EXPECT_EQ(ErrorCodeOf(m_->PutStart("k", 10, none, "c1", "h", PutMode::kInsert).status()),
            ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(m_->PutStart("k", UINT64_MAX, {}, "c1", "h", PutMode::kInsert).status()),
            ErrorCode::kNoAvailableHandle);
  EXPECT_EQ(ErrorCodeOf(m_->GetReplicaList("missing").status()), ErrorCode::kObjectNotFound);
  EXPECT_EQ(ErrorCodeOf(m_->Remove("missing", false)), ErrorCode::kObjectNotFound);
  EXPECT_EQ(ErrorCodeOf(m_->PutEnd("missing", "c1")), ErrorCode::kObjectNotFound);
  EXPECT_EQ(m_->stats().keys, 0u);
}

TEST_F(MasterServiceTest, FirstWriterWinsAndUpsertReplaces) {
  Mount("s1", 1 << 20);
  ASSERT_TRUE(Put("k", 100).ok());
  auto first = m_->Describe("k");
  EXPECT_EQ(ErrorCodeOf(Put("k", 200)), ErrorCode::kObjectAlreadyExists);
  EXPECT_EQ(m_->Describe("k")->size, 100u);
  ASSERT_TRUE(Put("k", 300, {}, PutMode::kUpsert).ok());
  EXPECT_EQ(m_->Describe("k")->size, 300u);
  EXPECT_EQ(m_->stats().keys, 1u);
  (void)first;
}

TEST_F(MasterServiceTest, ConcurrentPutOfOneKeyIsRefusedUntilTheDiscardTimeout) {
  Mount("s1", 1 << 20);
  ASSERT_TRUE(m_->PutStart("k", 100, {}, "c1", "h", PutMode::kInsert).ok());
  EXPECT_EQ(ErrorCodeOf(m_->PutStart("k", 100, {}, "c2", "h", PutMode::kInsert).status()),
            ErrorCode::kObjectAlreadyExists);
  Advance(seconds(31));  // past put_start_discard_timeout (30 s)
  ASSERT_TRUE(m_->PutStart("k", 100, {}, "c2", "h", PutMode::kInsert).ok());
  EXPECT_EQ(ErrorCodeOf(m_->PutEnd("k", "c1")), ErrorCode::kObjectNotFound)
      << "the discarded writer must not complete the new put";
  EXPECT_TRUE(m_->PutEnd("k", "c2").ok());
  EXPECT_EQ(m_->stats().space.allocated, 128u) << "the discarded put's space came back";
}

TEST_F(MasterServiceTest, APutStartSentAgainByItsWriterGetsTheSameSpace) {
  Mount("s1", 1 << 20);
  auto first = m_->PutStart("k", 100, {}, "c1", "h", PutMode::kInsert);
  ASSERT_TRUE(first.ok());
  auto again = m_->PutStart("k", 100, {}, "c1", "h", PutMode::kInsert);  // a retry
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)[0].buffers[0].address, (*first)[0].buffers[0].address);
  EXPECT_EQ(m_->stats().space.allocated, 128u) << "one allocation, not two";
  EXPECT_EQ(m_->stats().keys, 1u);
  EXPECT_TRUE(m_->PutEnd("k", "c1").ok());
}

TEST_F(MasterServiceTest, RevokeFreesTheSpaceAndTheKey) {
  Mount("s1", 4096);
  ASSERT_TRUE(m_->PutStart("k", 4096, {}, "c1", "h", PutMode::kInsert).ok());
  EXPECT_EQ(ErrorCodeOf(m_->PutRevoke("k", "c2")), ErrorCode::kObjectNotFound);
  ASSERT_TRUE(m_->PutRevoke("k", "c1").ok());
  EXPECT_EQ(m_->stats().space.allocated, 0u);
  EXPECT_TRUE(Put("k", 4096).ok());
}

TEST_F(MasterServiceTest, PutStartNeverFinishedIsReleasedAfterTheReleaseTimeout) {
  Mount("s1", 4096);
  ASSERT_TRUE(m_->PutStart("k", 4096, {}, "c1", "h", PutMode::kInsert).ok());
  Advance(seconds(599));
  m_->Ping("c1");
  m_->Tick();
  EXPECT_EQ(m_->stats().keys, 1u);
  Advance(seconds(1));
  m_->Ping("c1");
  m_->Tick();
  EXPECT_EQ(m_->stats().keys, 0u);
  EXPECT_EQ(m_->stats().put_start_released, 1u);
  EXPECT_EQ(m_->stats().space.allocated, 0u);
  EXPECT_TRUE(Put("k", 4096).ok());
}

TEST_F(MasterServiceTest, LeasedObjectIsNotRemovedAndItsSpaceNotReused) {
  Mount("s1", 4096);
  ASSERT_TRUE(Put("k", 4096).ok());
  auto g = m_->GetReplicaList("k");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(ErrorCodeOf(m_->Remove("k", false)), ErrorCode::kObjectHasLease);
  ASSERT_TRUE(m_->Remove("k", true).ok());
  // The lease is still live: the range must not be handed out again.
  EXPECT_EQ(ErrorCodeOf(Put("other", 64)), ErrorCode::kNoAvailableHandle);
  Advance(seconds(9));
  m_->Tick();
  EXPECT_EQ(ErrorCodeOf(Put("other", 64)), ErrorCode::kNoAvailableHandle);
  Advance(seconds(1));
  m_->Tick();
  EXPECT_TRUE(Put("other", 64).ok());
}

TEST_F(MasterServiceTest, ExistGrantsALeaseAndLeaseRunsOut) {
  Mount("s1", 1 << 20);
  ASSERT_TRUE(Put("k", 10).ok());
  EXPECT_TRUE(m_->Remove("k", false).ok()) << "no lease yet";
  ASSERT_TRUE(Put("k", 10).ok());
  EXPECT_TRUE(m_->Exist("k").ok());
  EXPECT_EQ(ErrorCodeOf(m_->Remove("k", false)), ErrorCode::kObjectHasLease);
  Advance(milliseconds(10001));
  EXPECT_TRUE(m_->Remove("k", false).ok());
}

TEST_F(MasterServiceTest, ReplicasAreOnDistinctSegments) {
  Mount("s1", 1 << 20);
  Mount("s2", 1 << 20);
  Mount("s3", 1 << 20);
  ReplicateConfig three;
  three.replica_num = 3;
  ASSERT_TRUE(Put("k", 5000, three).ok());
  auto g = m_->GetReplicaList("k");
  std::set<std::string> segs;
  for (const auto& r : g->replicas) segs.insert(r.segment_id);
  EXPECT_EQ(segs.size(), 3u);
  ReplicateConfig four;
  four.replica_num = 4;
  EXPECT_EQ(ErrorCodeOf(Put("k4", 10, four)), ErrorCode::kNoAvailableHandle);
  ReplicateConfig pref;
  pref.preferred_segments = {"s2:17000"};
  ASSERT_TRUE(Put("p", 10, pref).ok());
  EXPECT_EQ(m_->Describe("p")->replicas[0].segment_id, "s2");
}

TEST_F(MasterServiceTest, RemoveAllAndByRegexSkipLeasedObjects) {
  Mount("s1", 1 << 20);
  for (const char* k : {"a/1", "a/2", "b/1", "b/2"}) ASSERT_TRUE(Put(k, 10).ok());
  ASSERT_TRUE(m_->GetReplicaList("a/2").ok());  // leased
  auto n = m_->RemoveByRegex("a/.*");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(m_->ListKeys(100), (std::vector<std::string>{"a/2", "b/1", "b/2"}));
  EXPECT_EQ(ErrorCodeOf(m_->RemoveByRegex("(unclosed").status()), ErrorCode::kInvalidParams);
  // A pathological backtracking pattern runs in linear time under RE2.
  ASSERT_TRUE(m_->RemoveByRegex("(a*)*$").ok());
  EXPECT_EQ(m_->RemoveAll(), 2u);
  EXPECT_EQ(m_->ListKeys(100), (std::vector<std::string>{"a/2"}));
  EXPECT_EQ(m_->ListKeys(0).size(), 0u);
  EXPECT_EQ(*m_->RemoveByRegex("a/.*", /*force=*/true), 1u);  // leased, forced
  EXPECT_EQ(m_->stats().keys, 0u);
}

TEST_F(MasterServiceTest, EvictionOnFullSkipsLeasedPinnedAndIncompleteOldestFirst) {
  MasterServiceOptions opts;
  opts.eviction_ratio = 0.25;
  opts.allow_evict_soft_pinned_objects = false;
  Reset(opts);
  Mount("s1", 64 * 8);
  ReplicateConfig hard;
  hard.with_hard_pin = true;
  ReplicateConfig soft;
  soft.with_soft_pin = true;
  ASSERT_TRUE(Put("hard", 64, hard).ok());
  Advance(milliseconds(1));
  ASSERT_TRUE(Put("soft", 64, soft).ok());
  Advance(milliseconds(1));
  ASSERT_TRUE(m_->PutStart("writing", 64, {}, "c1", "h", PutMode::kInsert).ok());
  for (int i = 0; i < 5; ++i) {
    Advance(milliseconds(1));
    ASSERT_TRUE(Put("o" + std::to_string(i), 64).ok());
  }
  ASSERT_TRUE(m_->GetReplicaList("o0").ok());  // leased: the oldest, but kept
  Advance(milliseconds(1));
  // Full: 8 objects of 64 B. The next put evicts ceil(0.25 * 8) = 2, oldest unpinned first.
  ASSERT_TRUE(Put("new", 64).ok());
  EXPECT_EQ(m_->stats().evictions, 2u);
  auto keys = m_->ListKeys(100);
  std::set<std::string> left(keys.begin(), keys.end());
  EXPECT_TRUE(left.count("hard"));
  EXPECT_TRUE(left.count("soft"));
  EXPECT_TRUE(left.count("writing"));
  EXPECT_TRUE(left.count("o0"));
  EXPECT_FALSE(left.count("o1"));
  EXPECT_FALSE(left.count("o2"));
  EXPECT_TRUE(left.count("o3"));
  EXPECT_TRUE(left.count("new"));
}

TEST_F(MasterServiceTest, NothingEvictableFailsAtOnce) {
  Mount("s1", 128);
  ReplicateConfig hard;
  hard.with_hard_pin = true;
  ASSERT_TRUE(Put("a", 64, hard).ok());
  ASSERT_TRUE(Put("b", 64, hard).ok());
  EXPECT_EQ(ErrorCodeOf(Put("c", 64)), ErrorCode::kNoAvailableHandle);
  EXPECT_EQ(m_->stats().keys, 2u);
}

TEST_F(MasterServiceTest, HighWatermarkEvictsInTick) {
  MasterServiceOptions opts;
  opts.eviction_high_watermark_ratio = 0.5;
  opts.eviction_ratio = 0.5;
  Reset(opts);
  Mount("s1", 64 * 4);
  ASSERT_TRUE(Put("a", 64).ok());
  m_->Tick();
  EXPECT_EQ(m_->stats().evictions, 0u);
  Advance(milliseconds(1));
  ASSERT_TRUE(Put("b", 64).ok());
  m_->Ping("c1");
  m_->Tick();
  EXPECT_EQ(m_->stats().evictions, 1u);
  EXPECT_EQ(m_->ListKeys(10), (std::vector<std::string>{"b"}));
}

TEST_F(MasterServiceTest, UnknownClientIsToldToRemount) {
  EXPECT_TRUE(m_->Ping("stranger"));  // e.g. this master started after it mounted
  EXPECT_FALSE(m_->Ping("stranger"));
}

TEST_F(MasterServiceTest, SilentClientIsDroppedWithItsSegmentsAndMustRemount) {
  Mount("s1", 1 << 20, "c1");
  Mount("s2", 1 << 20, "c2");
  ReplicateConfig two;
  two.replica_num = 2;
  ASSERT_TRUE(Put("both", 100, two).ok());
  ReplicateConfig on1;
  on1.preferred_segments = {"s1"};
  ASSERT_TRUE(Put("only1", 100, on1).ok());
  Advance(seconds(6));
  EXPECT_FALSE(m_->Ping("c2"));
  Advance(seconds(5));  // c1 silent for 11 s > client_ttl 10 s
  EXPECT_FALSE(m_->Ping("c2"));
  m_->Tick();
  EXPECT_EQ(m_->stats().clients_dropped, 1u);
  EXPECT_EQ(ErrorCodeOf(m_->GetReplicaList("only1").status()), ErrorCode::kObjectNotFound);
  auto g = m_->GetReplicaList("both");
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->replicas.size(), 1u);
  EXPECT_EQ(g->replicas[0].segment_id, "s2");
  EXPECT_EQ(m_->Segments().size(), 1u);
  EXPECT_TRUE(m_->Ping("c1")) << "a dropped client is told to remount";
  EXPECT_FALSE(m_->Ping("c1"));
  Mount("s1", 1 << 20, "c1");
  EXPECT_EQ(m_->Segments().size(), 2u);
}

TEST_F(MasterServiceTest, UnmountByItsOwnerOnly) {
  Mount("s1", 1 << 20, "c1");
  Mount("s2", 1 << 20, "c2");
  ASSERT_TRUE(Put("k", 100,
                  [] {
                    ReplicateConfig c;
                    c.preferred_segments = {"s1"};
                    return c;
                  }())
                  .ok());
  EXPECT_EQ(ErrorCodeOf(m_->UnmountSegment("s1", "c2")), ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(m_->UnmountSegment("nope", "c2")), ErrorCode::kSegmentNotFound);
  ASSERT_TRUE(m_->UnmountSegment("s1", "c1").ok());
  EXPECT_EQ(ErrorCodeOf(m_->GetReplicaList("k").status()), ErrorCode::kObjectNotFound);
  EXPECT_EQ(m_->stats().keys, 0u);
}

// Many threads putting, reading and removing distinct and shared keys: every granted range
// is disjoint from every other live one, and counts add up.
TEST(MasterServiceConcurrencyTest, ParallelClientsKeepTheBooksStraight) {
  MasterService m(MasterServiceOptions{});
  ASSERT_TRUE(m.MountSegment({"s1", "s1:1", "h", 1 << 20, 64 << 20, "c"}).ok());
  ASSERT_TRUE(m.MountSegment({"s2", "s2:1", "h", 1 << 20, 64 << 20, "c"}).ok());
  std::atomic<int> puts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string key = "k" + std::to_string(t) + "/" + std::to_string(i);
        ReplicateConfig cfg;
        cfg.replica_num = 2;
        if (!m.PutStart(key, 4096, cfg, "c", "h", PutMode::kInsert).ok()) continue;
        if (m.PutEnd(key, "c").ok()) puts.fetch_add(1);
        m.Exist(key).IgnoreError();
        (void)m.PutStart("shared", 64, {}, "c", "h", PutMode::kInsert);
        if (i % 3 == 0) (void)m.Remove(key, true);
      }
    });
  }
  std::thread ticker([&] {
    for (int i = 0; i < 50; ++i) m.Tick();
  });
  for (auto& th : threads) th.join();
  ticker.join();
  EXPECT_EQ(puts.load(), 2400);
  EXPECT_EQ(m.stats().keys, m.ListKeys(1 << 20).size());
  std::set<std::pair<std::string, uint64_t>> starts;
  for (const std::string& key : m.ListKeys(1 << 20)) {
    auto d = m.Describe(key);
    ASSERT_TRUE(d.ok());
    for (const auto& r : d->replicas) {
      EXPECT_TRUE(starts.insert({r.segment_id, r.buffers[0].address}).second) << key;
    }
  }
}

}  // namespace
}  // namespace ferry::store
