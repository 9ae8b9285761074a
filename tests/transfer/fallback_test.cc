// Fallback along a peer's transport list: when a transport refuses a peer (it fails a
// slice and then no longer reaches that peer, as shm does when the kernel refuses
// cross-memory attach), the engine retries those slices on the next transport of the list
// (tcp here), stops using the refusing one for that peer, and counts the move. A wrapper
// ("fault:<inner>") is transparent: it falls back exactly as its inner transport does.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "ferry/transfer_engine.h"
#include "test_util.h"
#include "transfer/transport.h"

namespace ferry {
namespace {

std::atomic<int> refused_submits{0};

// Reaches every peer until its first submission, which it refuses.
class RefusingTransport : public transfer::Transport {
 public:
  std::string_view name() const override { return "refusing"; }
  bool same_host_only() const override { return true; }
  bool CanReach(const SegmentDescriptor&) const override { return !refused_.load(); }
  void Submit(const SegmentDescriptor&, std::span<transfer::Slice> slices, Deadline) override {
    refused_submits.fetch_add(1);
    refused_.store(true);
    for (auto& s : slices) s.done(UnavailableError("the kernel refused (EPERM)"));
  }
  void ForgetPeer(const std::string&) override { refused_.store(false); }

 private:
  std::atomic<bool> refused_{false};
};

class FallbackTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(transfer::TransportRegistry::Register(
                    "refusing",
                    [](const transfer::TransportOptions&,
                       transfer::TransportHost*) -> Result<std::unique_ptr<transfer::Transport>> {
                      return std::unique_ptr<transfer::Transport>(new RefusingTransport());
                    })
                    .ok());
  }
};

TEST_P(FallbackTest, RefusalRetriesOnTheNextTransportAndStopsUsingTheRefusingOne) {
  refused_submits = 0;
  auto target = testing::MakeEngine("tcp");
  auto initiator = testing::MakeEngine(GetParam());
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
  EXPECT_EQ(initiator->counters().transport_fallbacks, 3u);  // one per slice
  EXPECT_EQ(target->counters().bytes_received, 9u << 20);    // by tcp
  // Later requests go straight to tcp.
  TransferRequest r{TransferOp::kRead, local.data() + (10 << 20), *seg,
                    reinterpret_cast<uintptr_t>(remote.data()), 5 << 20};
  ASSERT_TRUE(initiator->TransferSync({&r, 1}).ok());
  TransferRequest small{TransferOp::kWrite, local.data(), *seg,
                        reinterpret_cast<uintptr_t>(remote.data()), 4096};
  ASSERT_TRUE(initiator->TransferSync({&small, 1}).ok());
  EXPECT_EQ(refused_submits.load(), 1);
  EXPECT_EQ(initiator->counters().transport_fallbacks, 3u);
  EXPECT_TRUE(testing::SameBytes(local.data() + (10 << 20), remote.data(), 5 << 20));
}

INSTANTIATE_TEST_SUITE_P(DirectAndWrapped, FallbackTest,
                         ::testing::Values("refusing", "fault:refusing"),
                         testing::TransportParamName);

}  // namespace
}  // namespace ferry
