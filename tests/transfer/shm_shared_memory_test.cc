// The shm transport's shared memory: SharedMemoryPool (the target's sealed memfds and what
// it offers to share) and PeerMapping (the initiator's checks on a descriptor a peer sent
// before mapping it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "transfer/shm/peer_mapping.h"
#include "transfer/shm/shared_memory_pool.h"

namespace ferry::transfer::shm {
namespace {

uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(SharedMemoryPoolTest, SharesOnlyRegisteredBuffersThatAreAllocations) {
  SharedMemoryPool pool;
  auto a = pool.Allocate(1 << 20);
  auto b = pool.Allocate(64 << 10);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Addr(*a) % 4096, 0u);
  std::vector<char> other(4096);
  std::vector<BufferDescriptor> registered = {
      {Addr(*a), 1 << 20, "cpu", true},
      {Addr(*b), 4096, "cpu", false},                   // not remote accessible
      {Addr(other.data()), other.size(), "cpu", true},  // not ours
      {Addr(*a) + 4096, 4096, "cpu", true},             // inside, but not at the start
  };
  std::vector<SharedRegion> shared = pool.Share(registered, 8);
  ASSERT_EQ(shared.size(), 1u);
  EXPECT_EQ(shared[0].addr, Addr(*a));
  EXPECT_EQ(shared[0].length, 1u << 20);
  ASSERT_TRUE(shared[0].fd.valid());
  EXPECT_GE(::fcntl(shared[0].fd.get(), F_GET_SEALS) & F_SEAL_SHRINK, F_SEAL_SHRINK);
  // A registration longer than its allocation is not shared.
  EXPECT_TRUE(pool.Share({{Addr(*b), 128 << 10, "cpu", true}}, 8).empty());
  registered[1].remote_accessible = true;
  EXPECT_EQ(pool.Share(registered, 1).size(), 1u);  // at most `max`
  EXPECT_EQ(pool.Share(registered, 8).size(), 2u);
  EXPECT_TRUE(pool.Free(*b).ok());
  EXPECT_EQ(pool.Free(*b).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Free(other.data()).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Allocate(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(PeerMappingTest, MapsASealedMemfdAndSeesThePeersBytes) {
  SharedMemoryPool pool;
  auto p = pool.Allocate(1 << 20);
  ASSERT_TRUE(p.ok());
  std::vector<SharedRegion> shared = pool.Share({{Addr(*p), 1 << 20, "cpu", true}}, 1);
  ASSERT_EQ(shared.size(), 1u);
  auto m = PeerMapping::Map(Addr(*p), 1 << 20, std::move(shared[0].fd));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const uint64_t base = Addr(*p);
  EXPECT_TRUE((*m)->Covers(base, 1 << 20));
  EXPECT_TRUE((*m)->Covers(base + 100, 10));
  EXPECT_FALSE((*m)->Covers(base + (1 << 20) - 4, 8));
  EXPECT_FALSE((*m)->Covers(base - 1, 2));
  EXPECT_FALSE((*m)->Covers(UINT64_MAX - 2, 8));
  std::memcpy((*m)->At(base + 10), "hello", 5);
  EXPECT_EQ(std::memcmp(static_cast<char*>(*p) + 10, "hello", 5), 0);  // the same pages
}

TEST(PeerMappingTest, RefusesWhatCouldFaultOrIsNotAFile) {
  // A pipe.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  EXPECT_EQ(PeerMapping::Map(4096, 4096, UniqueFd(pipe_fds[0])).status().code(),
            StatusCode::kInvalidArgument);
  // An unsealed memfd: its owner could shrink it under our mapping.
  UniqueFd open_fd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(open_fd.valid());
  ASSERT_EQ(::ftruncate(open_fd.get(), 1 << 20), 0);
  EXPECT_EQ(PeerMapping::Map(4096, 4096, std::move(open_fd)).status().code(),
            StatusCode::kInvalidArgument);
  // Sealed, but shorter than the buffer it claims to be.
  UniqueFd short_fd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(short_fd.get(), 4096), 0);
  ASSERT_EQ(::fcntl(short_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  EXPECT_EQ(PeerMapping::Map(4096, 8192, std::move(short_fd)).status().code(),
            StatusCode::kInvalidArgument);
  // Empty.
  UniqueFd empty_fd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::fcntl(empty_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  EXPECT_EQ(PeerMapping::Map(4096, 0, std::move(empty_fd)).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::transfer::shm
