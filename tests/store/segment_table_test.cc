#include "store/master/segment_table.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/error_code.h"

namespace ferry::store {
namespace {

using std::chrono::seconds;
using Clock = SegmentTable::Clock;

SegmentInfo Seg(std::string id, std::string host, uint64_t size, std::string client = "c1") {
  return {id, host + ":17000", host, 0x100000 * (1 + id.size()), size, client};
}

TEST(SegmentTableTest, MountIsIdempotentAndRefusesConflictsAndBadRanges) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 4096)).ok());
  EXPECT_TRUE(t.Mount(Seg("a", "h1", 4096)).ok());
  EXPECT_EQ(ErrorCodeOf(t.Mount(Seg("a", "h1", 8192))), ErrorCode::kSegmentAlreadyExists);
  EXPECT_EQ(ErrorCodeOf(t.Mount(Seg("b", "h1", 0))), ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(t.Mount(Seg("", "h1", 64))), ErrorCode::kInvalidParams);
  SegmentInfo wrap = Seg("w", "h1", 4096);
  wrap.base = UINT64_MAX - 100;
  EXPECT_EQ(ErrorCodeOf(t.Mount(wrap)), ErrorCode::kInvalidParams);
  EXPECT_EQ(t.totals().segments, 1u);
  EXPECT_EQ(ErrorCodeOf(t.Unmount("nope")), ErrorCode::kSegmentNotFound);
}

TEST(SegmentTableTest, ReplicasLandOnDistinctSegmentsAllOrNothing) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 1 << 20)).ok());
  ASSERT_TRUE(t.Mount(Seg("b", "h2", 1 << 20)).ok());
  ASSERT_TRUE(t.Mount(Seg("c", "h3", 4096)).ok());
  auto r = t.AllocateReplicas(8192, 2, {}, "", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_NE((*r)[0].segment_id(), (*r)[1].segment_id());
  EXPECT_NE((*r)[0].segment_id(), "c");  // too small
  EXPECT_NE((*r)[1].segment_id(), "c");
  // Three replicas of 8 KiB cannot fit (c holds 4 KiB): refused, nothing kept.
  const uint64_t before = t.totals().allocated;
  auto three = t.AllocateReplicas(8192, 3, {}, "", false);
  EXPECT_EQ(ErrorCodeOf(three.status()), ErrorCode::kNoAvailableHandle);
  EXPECT_EQ(t.totals().allocated, before);
  EXPECT_EQ(ErrorCodeOf(t.AllocateReplicas(64, 4, {}, "", false).status()),
            ErrorCode::kNoAvailableHandle);
  EXPECT_EQ(ErrorCodeOf(t.AllocateReplicas(0, 1, {}, "", false).status()),
            ErrorCode::kInvalidParams);
}

TEST(SegmentTableTest, AddressesAreAbsoluteAndInsideTheSegment) {
  SegmentTable t;
  SegmentInfo a = Seg("a", "h1", 1 << 16);
  ASSERT_TRUE(t.Mount(a).ok());
  std::set<uint64_t> seen;
  for (int i = 0; i < 16; ++i) {
    auto r = t.AllocateReplicas(4096, 1, {}, "", false);
    ASSERT_TRUE(r.ok());
    const AllocatedRange& x = (*r)[0];
    EXPECT_GE(x.address, a.base);
    EXPECT_LE(x.address + x.length, a.base + a.size);
    EXPECT_TRUE(seen.insert(x.address).second);
  }
  EXPECT_FALSE(t.AllocateReplicas(4096, 1, {}, "", false).ok());
}

TEST(SegmentTableTest, PreferredThenSameNodeThenMostFree) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 1 << 20)).ok());
  ASSERT_TRUE(t.Mount(Seg("b", "h2", 2 << 20)).ok());
  ASSERT_TRUE(t.Mount(Seg("c", "h3", 4 << 20)).ok());
  EXPECT_EQ((*t.AllocateReplicas(64, 1, {}, "", false))[0].segment_id(), "c");  // most free
  EXPECT_EQ((*t.AllocateReplicas(64, 1, {"h1:17000"}, "", false))[0].segment_id(), "a");
  EXPECT_EQ((*t.AllocateReplicas(64, 1, {"h2"}, "", false))[0].segment_id(), "b");
  EXPECT_EQ((*t.AllocateReplicas(64, 1, {}, "h2", true))[0].segment_id(), "b");
  EXPECT_EQ((*t.AllocateReplicas(64, 1, {}, "h2", false))[0].segment_id(), "c");
  auto two = t.AllocateReplicas(64, 2, {"h1", "h2"}, "", false);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)[0].segment_id(), "a");
  EXPECT_EQ((*two)[1].segment_id(), "b");
  // A preferred segment without room is skipped, not an error.
  auto big = t.AllocateReplicas(3 << 20, 1, {"a"}, "", false);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ((*big)[0].segment_id(), "c");
}

TEST(SegmentTableTest, HeldRangesAreNotReusedUntilTheirTime) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 4096)).ok());
  auto r = t.AllocateReplicas(4096, 1, {}, "", false);
  ASSERT_TRUE(r.ok());
  const Clock::time_point now = Clock::now();
  t.Release((*r)[0], now + seconds(10), now);
  EXPECT_EQ(t.totals().held, 4096u);
  EXPECT_FALSE(t.AllocateReplicas(64, 1, {}, "", false).ok()) << "held space handed out";
  EXPECT_EQ(t.Sweep(now + seconds(9)), 0u);
  EXPECT_FALSE(t.AllocateReplicas(64, 1, {}, "", false).ok());
  EXPECT_EQ(t.Sweep(now + seconds(10)), 1u);
  EXPECT_EQ(t.totals().held, 0u);
  auto again = t.AllocateReplicas(4096, 1, {}, "", false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].address, (*r)[0].address);
}

TEST(SegmentTableTest, ReleaseWithoutLeaseFreesAtOnce) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 4096)).ok());
  auto r = t.AllocateReplicas(4096, 1, {}, "", false);
  const Clock::time_point now = Clock::now();
  t.Release((*r)[0], now - seconds(1), now);
  EXPECT_EQ(t.totals().allocated, 0u);
}

TEST(SegmentTableTest, StaleReleaseAfterRemountIsIgnored) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 8192)).ok());
  const uint64_t v1 = t.view_version();
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 8192)).ok());  // idempotent: same view
  EXPECT_EQ(t.view_version(), v1);
  auto old = t.AllocateReplicas(4096, 1, {}, "", false);
  ASSERT_TRUE(t.Unmount("a").ok());
  const uint64_t v2 = t.view_version();
  EXPECT_NE(v2, v1);
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 8192)).ok());
  EXPECT_NE(t.view_version(), v2) << "same segment count as before, but a new view";
  auto fresh = t.AllocateReplicas(4096, 1, {}, "", false);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE((*old)[0].generation, (*fresh)[0].generation);
  EXPECT_EQ((*fresh)[0].generation, t.GenerationOf("a"));
  // The old range (same address as the new one) must not free the new allocation.
  const Clock::time_point now = Clock::now();
  t.Release((*old)[0], now, now);
  EXPECT_EQ(t.totals().allocated, 4096u);
}

TEST(SegmentTableTest, SegmentsOfAClient) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 4096, "c1")).ok());
  ASSERT_TRUE(t.Mount(Seg("b", "h1", 4096, "c2")).ok());
  ASSERT_TRUE(t.Mount(Seg("cc", "h1", 4096, "c1")).ok());
  EXPECT_EQ(t.SegmentsOf("c1"), (std::vector<std::string>{"a", "cc"}));
  EXPECT_EQ(t.SegmentsOf("c2"), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(t.SegmentsOf("c3").empty());
  EXPECT_EQ(t.List().size(), 3u);
}

TEST(SegmentTableTest, ConcurrentAllocationsNeverOverlap) {
  SegmentTable t;
  ASSERT_TRUE(t.Mount(Seg("a", "h1", 1 << 20)).ok());
  ASSERT_TRUE(t.Mount(Seg("b", "h2", 1 << 20)).ok());
  std::vector<std::vector<AllocatedRange>> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 100; ++j) {
        auto r = t.AllocateReplicas(1024, 2, {}, "", false);
        if (r.ok()) got[i].insert(got[i].end(), r->begin(), r->end());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::pair<std::string, uint64_t>> starts;
  size_t n = 0;
  for (const auto& v : got) {
    for (const auto& r : v) {
      EXPECT_TRUE(starts.insert({r.segment_id(), r.address}).second);
      ++n;
    }
  }
  EXPECT_EQ(n, 800u);
  EXPECT_EQ(t.totals().allocated, 800u * 1024u);
}

}  // namespace
}  // namespace ferry::store
