#include "store/offset_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace ferry::store {
namespace {

TEST(OffsetAllocatorTest, RoundsToAlignmentAndPacksFromTheStart) {
  OffsetAllocator a(4096, 64);
  auto r1 = a.Allocate(1);
  auto r2 = a.Allocate(65);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->offset, 0u);
  EXPECT_EQ(r1->length, 64u);
  EXPECT_EQ(r2->offset, 64u);
  EXPECT_EQ(r2->length, 128u);
  EXPECT_EQ(a.allocated_bytes(), 192u);
  EXPECT_EQ(a.free_bytes(), 4096u - 192u);
}

TEST(OffsetAllocatorTest, CapacityRoundedDownAndZeroLengthRefused) {
  OffsetAllocator a(1000, 64);
  EXPECT_EQ(a.capacity(), 960u);
  EXPECT_FALSE(a.Allocate(0));
  EXPECT_FALSE(a.Allocate(961));
  auto all = a.Allocate(960);
  ASSERT_TRUE(all);
  EXPECT_EQ(a.free_ranges(), 0u);
  EXPECT_EQ(a.largest_free(), 0u);
  EXPECT_FALSE(a.Allocate(1));
}

TEST(OffsetAllocatorTest, AbsurdLengthDoesNotWrap) {
  OffsetAllocator a(1 << 20, 64);
  EXPECT_FALSE(a.Allocate(UINT64_MAX));
  EXPECT_FALSE(a.Allocate(UINT64_MAX - 10));
  EXPECT_EQ(a.free_bytes(), 1u << 20);
}

TEST(OffsetAllocatorTest, BestFitPicksTheSmallestHole) {
  OffsetAllocator a(64 * 10, 64);
  std::vector<OffsetAllocator::Range> r;
  for (int i = 0; i < 10; ++i) r.push_back(*a.Allocate(64));
  // Holes: [0] of 1 unit, [2,3] of 2 units, [5,6,7] of 3 units.
  ASSERT_TRUE(a.Free(r[0].offset, 64).ok());
  ASSERT_TRUE(a.Free(r[2].offset, 64).ok());
  ASSERT_TRUE(a.Free(r[3].offset, 64).ok());
  ASSERT_TRUE(a.Free(r[5].offset, 64).ok());
  ASSERT_TRUE(a.Free(r[6].offset, 64).ok());
  ASSERT_TRUE(a.Free(r[7].offset, 64).ok());
  EXPECT_EQ(a.free_ranges(), 3u);
  EXPECT_EQ(a.largest_free(), 192u);
  auto two = a.Allocate(128);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->offset, 128u);
  auto one = a.Allocate(64);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->offset, 0u);
}

TEST(OffsetAllocatorTest, FreeCoalescesWithBothNeighbours) {
  OffsetAllocator a(64 * 3, 64);
  auto x = *a.Allocate(64);
  auto y = *a.Allocate(64);
  auto z = *a.Allocate(64);
  ASSERT_TRUE(a.Free(x.offset, x.length).ok());
  ASSERT_TRUE(a.Free(z.offset, z.length).ok());
  EXPECT_EQ(a.free_ranges(), 2u);
  ASSERT_TRUE(a.Free(y.offset, y.length).ok());
  EXPECT_EQ(a.free_ranges(), 1u);
  EXPECT_EQ(a.largest_free(), 192u);
  auto all = a.Allocate(192);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->offset, 0u);
}

TEST(OffsetAllocatorTest, BadFreesAreRefusedAndChangeNothing) {
  OffsetAllocator a(4096, 64);
  auto r = *a.Allocate(256);
  EXPECT_FALSE(a.Free(r.offset, 0).ok());              // empty
  EXPECT_FALSE(a.Free(r.offset + 1, 64).ok());         // misaligned offset
  EXPECT_FALSE(a.Free(r.offset, 65).ok());             // misaligned length
  EXPECT_FALSE(a.Free(4096, 64).ok());                 // past the end
  EXPECT_FALSE(a.Free(4032, 128).ok());                // leaves the segment
  EXPECT_FALSE(a.Free(UINT64_MAX & ~63ull, 64).ok());  // absurd offset
  EXPECT_FALSE(a.Free(0, UINT64_MAX & ~63ull).ok());   // absurd length
  EXPECT_FALSE(a.Free(256, 64).ok());                  // already free
  EXPECT_FALSE(a.Free(192, 128).ok());                 // half free
  EXPECT_EQ(a.allocated_bytes(), 256u);
  ASSERT_TRUE(a.Free(r.offset, r.length).ok());
  Status twice = a.Free(r.offset, r.length);  // double free
  EXPECT_EQ(twice.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.free_bytes(), 4096u);
  EXPECT_EQ(a.free_ranges(), 1u);
}

TEST(OffsetAllocatorTest, PartialFreeOfAnAllocationIsAllowed) {
  // The master frees exactly what it was given, but the allocator is range based: the
  // tail of an allocation can be returned on its own.
  OffsetAllocator a(1024, 64);
  auto r = *a.Allocate(512);
  ASSERT_TRUE(a.Free(r.offset + 256, 256).ok());
  EXPECT_EQ(a.allocated_bytes(), 256u);
  EXPECT_EQ(a.free_ranges(), 1u);
}

TEST(OffsetAllocatorTest, AlignmentOneAndBadAlignmentFallsBackToOne) {
  OffsetAllocator one(10, 1);
  EXPECT_EQ(one.Allocate(3)->length, 3u);
  OffsetAllocator bad(10, 48);  // not a power of two
  EXPECT_EQ(bad.alignment(), 1u);
  EXPECT_EQ(bad.Allocate(7)->length, 7u);
}

// Random allocations and frees checked against a unit-by-unit model: no range is handed
// out twice, every range lies inside the segment, free bytes always agree, and after
// freeing everything the segment is one range again.
TEST(OffsetAllocatorTest, RandomizedAgainstAModel) {
  constexpr uint64_t kUnit = 64;
  constexpr uint64_t kUnits = 2048;
  OffsetAllocator a(kUnit * kUnits, kUnit);
  std::vector<bool> used(kUnits, false);
  std::vector<OffsetAllocator::Range> live;
  std::mt19937_64 rng(20261202);
  uint64_t used_bytes = 0;
  for (int step = 0; step < 20000; ++step) {
    const bool alloc = live.empty() || (rng() % 100) < 55;
    if (alloc) {
      const uint64_t len = 1 + rng() % (kUnit * 40);
      auto r = a.Allocate(len);
      if (!r) {
        EXPECT_LT(a.largest_free(), (len + kUnit - 1) / kUnit * kUnit);
        continue;
      }
      ASSERT_EQ(r->offset % kUnit, 0u);
      ASSERT_GE(r->length, len);
      ASSERT_LE(r->offset + r->length, kUnit * kUnits);
      for (uint64_t u = r->offset / kUnit; u < (r->offset + r->length) / kUnit; ++u) {
        ASSERT_FALSE(used[u]) << "unit " << u << " handed out twice at step " << step;
        used[u] = true;
      }
      used_bytes += r->length;
      live.push_back(*r);
    } else {
      const size_t i = rng() % live.size();
      const auto r = live[i];
      live[i] = live.back();
      live.pop_back();
      ASSERT_TRUE(a.Free(r.offset, r.length).ok());
      for (uint64_t u = r.offset / kUnit; u < (r.offset + r.length) / kUnit; ++u) used[u] = false;
      used_bytes -= r.length;
    }
    ASSERT_EQ(a.allocated_bytes(), used_bytes);
  }
  for (const auto& r : live) ASSERT_TRUE(a.Free(r.offset, r.length).ok());
  EXPECT_EQ(a.free_ranges(), 1u);
  EXPECT_EQ(a.largest_free(), kUnit * kUnits);
}

TEST(OffsetAllocatorTest, AllocateAtMarksExactlyThatRangeUsed) {
  OffsetAllocator a(1 << 16, 64);
  ASSERT_TRUE(a.AllocateAt(4096, 1024).ok());
  ASSERT_TRUE(a.AllocateAt(0, 64).ok());
  EXPECT_EQ(a.allocated_bytes(), 1088u);
  EXPECT_EQ(a.free_ranges(), 2u);
  // Overlapping, misaligned, outside: refused, nothing changes.
  EXPECT_FALSE(a.AllocateAt(4096 + 960, 128).ok());
  EXPECT_FALSE(a.AllocateAt(4032, 128).ok());
  EXPECT_FALSE(a.AllocateAt(0, 64).ok());
  EXPECT_FALSE(a.AllocateAt(100, 64).ok());
  EXPECT_FALSE(a.AllocateAt(1 << 16, 64).ok());
  EXPECT_EQ(a.allocated_bytes(), 1088u);
  // What Allocate hands out next never touches the restored ranges.
  for (;;) {
    auto r = a.Allocate(64);
    if (!r) break;
    EXPECT_TRUE(r->offset >= 64 && (r->offset < 4096 || r->offset >= 5120)) << r->offset;
  }
  EXPECT_EQ(a.free_bytes(), 0u);
  ASSERT_TRUE(a.Free(4096, 1024).ok());
  EXPECT_EQ(a.largest_free(), 1024u);
}

}  // namespace
}  // namespace ferry::store
