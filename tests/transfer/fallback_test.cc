// shm -> tcp fallback: when the shm transport reports that the kernel refused
// cross-memory attach (Unimplemented), the engine retries those slices over tcp and stops
// using shm for that peer.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "ferry/transfer_engine.h"
#include "test_util.h"
#include "transfer/transport.h"

namespace ferry {
namespace {

std::atomic<int> refused_submits{0};

// Poses as "shm" and fails every slice the way shm does under a refusing kernel.
class RefusingShm : public transfer::Transport {
 public:
  std::string_view name() const override { return "shm"; }
  bool CanReach(const SegmentDescriptor&) const override { return true; }
  void Submit(const SegmentDescriptor&, std::span<transfer::Slice> slices, Deadline) override {
    refused_submits.fetch_add(1);
    for (auto& s : slices) s.done(UnimplementedError("process_vm_writev refused (EPERM)"));
  }
};

TEST(FallbackTest, KernelRefusalRetriesOverTcpAndStopsUsingShm) {
  ASSERT_TRUE(transfer::TransportRegistry::Register(
                  "refusing_shm",
                  [](const transfer::TransportOptions&,
                     transfer::TransportHost*) -> Result<std::unique_ptr<transfer::Transport>> {
                    return std::unique_ptr<transfer::Transport>(new RefusingShm());
                  })
                  .ok());
  auto target = testing::MakeEngine("tcp");
  auto initiator = testing::MakeEngine("refusing_shm");
  ASSERT_TRUE(target && initiator);
  std::vector<char> remote(16 << 20), local(16 << 20);
  ASSERT_TRUE(target->RegisterMemory({remote.data(), remote.size()}).ok());
  auto seg = initiator->OpenSegment(target->local_name());
  ASSERT_TRUE(seg.ok());
  testing::FillRandom(local.data(), local.size(), 8);
  TransferRequest w{TransferOp::kWrite, local.data(), *seg,
                    reinterpret_cast<uintptr_t>(remote.data()), 9 << 20};  // 3 slices
  Status s = initiator->TransferSync({&w, 1});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(testing::SameBytes(remote.data(), local.data(), 9 << 20));
  EXPECT_EQ(refused_submits.load(), 1);
  // Later requests go straight to tcp.
  TransferRequest r{TransferOp::kRead, local.data() + (10 << 20), *seg,
                    reinterpret_cast<uintptr_t>(remote.data()), 5 << 20};
  ASSERT_TRUE(initiator->TransferSync({&r, 1}).ok());
  EXPECT_EQ(refused_submits.load(), 1);
  EXPECT_TRUE(testing::SameBytes(local.data() + (10 << 20), remote.data(), 5 << 20));
}

}  // namespace
}  // namespace ferry
