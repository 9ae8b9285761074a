// Faults, over every registered transport: a peer killed in the middle of a transfer of
// gigabytes fails the request promptly (Unavailable) and a new peer at the same name is
// reachable afterwards; a peer that stops answering (SIGSTOP) never makes a request
// outlive its deadline; destruction with requests in flight ends them and joins every
// thread.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ferry/transfer_engine.h"
#include "peer_process.h"
#include "test_util.h"

namespace ferry {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kGiB = 1ull << 30;

using testing::PeerProcess;

// 1 GiB of local memory (untouched pages read as zeros; no need to fill).
struct BigBuffer {
  explicit BigBuffer(size_t n) : size(n) {
    p = static_cast<char*>(
        ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~BigBuffer() { ::munmap(p, size); }
  char* p;
  size_t size;
};

class FaultTest : public ::testing::TestWithParam<std::string> {
 protected:
  // The peer process runs the data transport under the one being tested.
  std::vector<std::string> PeerOptions() const {
    return {"transport=" + testing::BaseTransport(GetParam())};
  }
};

TEST_P(FaultTest, PeerKilledMidTransferFailsPromptlyAndNewPeerIsReachable) {
  std::string name;
  BigBuffer local(kGiB);
  auto engine = testing::MakeEngine(GetParam());
  ASSERT_TRUE(engine);
  SegmentId seg = 0;
  {
    PeerProcess peer("127.0.0.1:0", kGiB, PeerOptions());
    name = peer.name();
    auto s = engine->OpenSegment(name);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    seg = *s;
    // 4 GiB in all (the same gigabyte four times), so that even a one-copy transport is
    // still busy when the kill comes.
    auto batch = engine->AllocateBatch(4);
    ASSERT_TRUE(batch.ok());
    TransferRequest w{TransferOp::kWrite, local.p, seg, peer.addr(), kGiB};
    TransferRequest ws[] = {w, w, w, w};
    ASSERT_TRUE(engine->Submit(*batch, ws, std::chrono::seconds(30)).ok());
    // Kill it once part of the data has arrived, or after 300 ms (a transport may report
    // its slices only at the end: ucx completes writes with one flush per submission).
    auto until = Clock::now() + std::chrono::milliseconds(300);
    while (Clock::now() < until) {
      auto st = engine->GetBatchStatus(*batch);
      if (st.ok() && st->bytes_done >= (32u << 20)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto st = engine->GetBatchStatus(*batch);
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st->state, TransferState::kPending) << "transfer ended before the kill";
    peer.Kill();
    auto killed_at = Clock::now();
    Status s2 = engine->WaitBatch(*batch, std::chrono::seconds(30));
    auto took = Clock::now() - killed_at;
    EXPECT_EQ(s2.code(), StatusCode::kUnavailable) << s2.ToString();
    EXPECT_LT(took, std::chrono::seconds(2)) << "failure was not prompt";
    EXPECT_TRUE(engine->FreeBatch(*batch).ok());
  }
  // A new process at the same name: the engine reconnects and refreshes its descriptor.
  PeerProcess again(name, 64u << 20, PeerOptions());
  ASSERT_EQ(again.name(), name);
  testing::FillRandom(local.p, 1 << 20, 5);
  TransferRequest w{TransferOp::kWrite, local.p, seg, again.addr(), 1 << 20};
  Status s3 = engine->TransferSync({&w, 1}, std::chrono::seconds(10));
  ASSERT_TRUE(s3.ok()) << s3.ToString();
  TransferRequest r{TransferOp::kRead, local.p + (2 << 20), seg, again.addr(), 1 << 20};
  ASSERT_TRUE(engine->TransferSync({&r, 1}, std::chrono::seconds(10)).ok());
  EXPECT_TRUE(testing::SameBytes(local.p, local.p + (2 << 20), 1 << 20));
  auto t0 = Clock::now();
  engine.reset();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
}

TEST_P(FaultTest, SilentPeerFailsAtTheDeadline) {
  BigBuffer local(64u << 20);
  auto engine = testing::MakeEngine(GetParam());
  PeerProcess peer("127.0.0.1:0", 64u << 20, PeerOptions());
  auto seg = engine->OpenSegment(peer.name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  peer.Signal(SIGSTOP);
  for (size_t n : {size_t{4096}, size_t{64u << 20}}) {
    SCOPED_TRACE(n);
    TransferRequest w{TransferOp::kWrite, local.p, *seg, peer.addr(), n};
    auto t0 = Clock::now();
    Status s = engine->TransferSync({&w, 1}, std::chrono::milliseconds(800));
    auto took = Clock::now() - t0;
    EXPECT_LT(took, std::chrono::milliseconds(1500));
    if (testing::BaseTransport(GetParam()) == "tcp") {
      // The target's server must answer: a stopped one fails the request at its deadline.
      EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
      EXPECT_GE(took, std::chrono::milliseconds(790));
    } else {
      // One-sided transports (shm's cross-memory attach) may finish without the target
      // running; either way nothing outlives the deadline.
      EXPECT_TRUE(s.ok() || s.code() == StatusCode::kDeadlineExceeded) << s.ToString();
    }
  }
  // A new connection to a stopped process is accepted by the kernel but never greeted.
  TransferEngineOptions o;
  o.connect_timeout = std::chrono::milliseconds(500);
  auto other_or = TransferEngine::Create(o);
  ASSERT_TRUE(other_or.ok());
  auto other = std::move(*other_or);
  auto t0 = Clock::now();
  auto seg2 = other->OpenSegment(peer.name());
  EXPECT_FALSE(seg2.ok());
  EXPECT_EQ(seg2.status().code(), StatusCode::kDeadlineExceeded) << seg2.status().ToString();
  EXPECT_LT(Clock::now() - t0, o.connect_timeout + std::chrono::seconds(1));
  peer.Signal(SIGCONT);
}

TEST_P(FaultTest, DestructionAbortsRequestsInFlight) {
  BigBuffer local(64u << 20);
  auto engine = testing::MakeEngine(GetParam());
  PeerProcess peer("127.0.0.1:0", 64u << 20, PeerOptions());
  auto seg = engine->OpenSegment(peer.name());
  ASSERT_TRUE(seg.ok());
  peer.Signal(SIGSTOP);
  auto batch = engine->AllocateBatch(1);
  TransferRequest w{TransferOp::kWrite, local.p, *seg, peer.addr(), 64u << 20};
  ASSERT_TRUE(engine->Submit(*batch, {&w, 1}, std::chrono::seconds(60)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto st = engine->GetBatchStatus(*batch);
  ASSERT_TRUE(st.ok());
  if (testing::BaseTransport(GetParam()) == "tcp") {
    // The stopped target cannot answer.
    EXPECT_EQ(st->state, TransferState::kPending) << engine->WaitBatch(*batch, {}).ToString();
  }
  auto t0 = Clock::now();
  engine.reset();  // fails the request with Aborted, joins every thread
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  peer.Signal(SIGCONT);
}

// The control plane's probe: the peer itself answers (alive, which process), a stopped
// peer fails at the probe's deadline, a dead one at once, a restarted one is noticed and
// its segment refreshed.
TEST(ProbeTest, AliveStoppedRestartedAndDeadPeers) {
  auto engine = testing::MakeEngine("tcp");
  ASSERT_TRUE(engine);
  EXPECT_EQ(engine->Probe(12345).status().code(), StatusCode::kNotFound);
  std::string name;
  SegmentId seg = 0;
  int64_t first_pid = 0;
  {
    PeerProcess peer("127.0.0.1:0", 1 << 20);
    name = peer.name();
    auto s = engine->OpenSegment(name);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    seg = *s;
    first_pid = peer.pid();
    auto rtt = engine->Probe(seg);
    ASSERT_TRUE(rtt.ok()) << rtt.status().ToString();
    EXPECT_GT(rtt->count(), 0);
    EXPECT_LT(*rtt, std::chrono::seconds(1));
    peer.Signal(SIGSTOP);
    auto t0 = Clock::now();
    auto stopped = engine->Probe(seg, std::chrono::milliseconds(300));
    auto took = Clock::now() - t0;
    EXPECT_EQ(stopped.status().code(), StatusCode::kDeadlineExceeded)
        << stopped.status().ToString();
    EXPECT_GE(took, std::chrono::milliseconds(250));
    EXPECT_LT(took, std::chrono::seconds(2)) << "the probe outlived its deadline";
    peer.Signal(SIGCONT);
    auto back = engine->Probe(seg, std::chrono::seconds(5));
    EXPECT_TRUE(back.ok()) << back.status().ToString();
    peer.Kill();
    t0 = Clock::now();
    auto dead = engine->Probe(seg, std::chrono::seconds(5));
    EXPECT_FALSE(dead.ok());
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2)) << "a dead peer was not noticed at once";
  }
  // Another process at the same name: the probe notices and the segment follows it.
  PeerProcess again(name, 1 << 20);
  auto rtt = engine->Probe(seg, std::chrono::seconds(5));
  ASSERT_TRUE(rtt.ok()) << rtt.status().ToString();
  auto d = engine->GetSegmentDescriptor(seg);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->pid, again.pid());
  EXPECT_NE(d->pid, first_pid);
  std::vector<char> buf(4096, 'p');
  ASSERT_TRUE(engine->RegisterMemory({buf.data(), buf.size(), "cpu", false}).ok());
  TransferRequest w{TransferOp::kWrite, buf.data(), seg, again.addr(), buf.size()};
  EXPECT_TRUE(engine->TransferSync({&w, 1}, std::chrono::seconds(5)).ok());
}

INSTANTIATE_TEST_SUITE_P(AllTransports, FaultTest,
                         ::testing::ValuesIn(testing::RegisteredTransports()),
                         testing::TransportParamName);

}  // namespace
}  // namespace ferry
