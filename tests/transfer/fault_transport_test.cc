// FaultTransport over an in-process loopback transport: drop, delay, corrupt, kill, seeds,
// option errors and shutdown.
#include "transfer/fault/fault_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "test_util.h"

namespace ferry::transfer::fault {
namespace {

using ::ferry::testing::FillRandom;
using ::ferry::testing::SameBytes;

uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// "Remote" addresses are in this process: memcpy inline, like a perfect network.
class LoopbackTransport : public Transport {
 public:
  std::string_view name() const override { return "test_loopback"; }
  bool CanReach(const SegmentDescriptor&) const override { return true; }
  void Submit(const SegmentDescriptor&, std::span<Slice> slices, Deadline deadline) override {
    for (Slice& s : slices) {
      if (deadline.Expired()) {
        s.done(DeadlineExceededError("loopback: deadline"));
        continue;
      }
      char* remote = reinterpret_cast<char*>(static_cast<uintptr_t>(s.remote));
      if (s.op == TransferOp::kWrite) {
        std::memcpy(remote, s.local, s.length);
      } else {
        std::memcpy(s.local, remote, s.length);
      }
      s.done(OkStatus());
    }
  }
};

void RegisterLoopbackOnce() {
  static bool done = [] {
    Status s =
        TransportRegistry::Register("test_loopback", [](const TransportOptions&, TransportHost*) {
          return Result<std::unique_ptr<Transport>>(std::make_unique<LoopbackTransport>());
        });
    return s.ok();
  }();
  ASSERT_TRUE(done);
}

std::unique_ptr<Transport> MakeFault(std::vector<std::pair<std::string, std::string>> extra) {
  RegisterLoopbackOnce();
  TransportOptions o;
  o.extra = std::move(extra);
  auto t = TransportRegistry::Create("fault:test_loopback", o, nullptr);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

// Submits and waits (bounded) for every done(); returns the statuses.
std::vector<Status> RunSlices(Transport& t, std::vector<Slice> slices,
                              Deadline deadline = Deadline::In(std::chrono::seconds(10))) {
  auto st = std::make_shared<std::vector<Status>>(slices.size());
  auto left = std::make_shared<std::atomic<int>>(static_cast<int>(slices.size()));
  for (size_t i = 0; i < slices.size(); ++i) {
    slices[i].done = [st, left, i](const Status& s) {
      (*st)[i] = s;
      left->fetch_sub(1);
    };
  }
  t.Submit(SegmentDescriptor{}, slices, deadline);
  Deadline wait = Deadline::In(std::chrono::seconds(20));
  while (left->load() > 0 && !wait.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(left->load(), 0);
  return *st;
}

std::vector<Slice> Writes(std::vector<char>& src, std::vector<char>& dst, size_t piece) {
  std::vector<Slice> v;
  for (size_t off = 0; off < src.size(); off += piece) {
    v.push_back({TransferOp::kWrite, &src[off], Addr(&dst[off]), std::min(piece, src.size() - off),
                 nullptr});
  }
  return v;
}

TEST(FaultTransportTest, NoFaultsPassesBytesThrough) {
  auto t = MakeFault({});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name(), "fault:test_loopback");
  std::vector<char> a(10000), b(10000);
  FillRandom(a.data(), a.size(), 1);
  for (const Status& s : RunSlices(*t, Writes(a, b, 4096))) EXPECT_TRUE(s.ok());
  EXPECT_TRUE(SameBytes(a.data(), b.data(), a.size()));
}

TEST(FaultTransportTest, DropAllFailsUnavailableAndSendsNothing) {
  auto t = MakeFault({{"drop", "1"}});
  ASSERT_TRUE(t);
  std::vector<char> a(8192, 'a'), b(8192, 'b');
  for (const Status& s : RunSlices(*t, Writes(a, b, 1024))) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(std::count(b.begin(), b.end(), 'b'), 8192);
}

TEST(FaultTransportTest, SameSeedDropsTheSameSlices) {
  auto pattern = [](const std::string& seed) {
    auto t = MakeFault({{"drop", "0.5"}, {"seed", seed}});
    std::vector<char> a(64 * 100), b(64 * 100);
    std::string p;
    for (const Status& s : RunSlices(*t, Writes(a, b, 64))) p += s.ok() ? '.' : 'x';
    return p;
  };
  std::string p1 = pattern("7"), p2 = pattern("7"), p3 = pattern("8");
  EXPECT_EQ(p1, p2);
  EXPECT_NE(p1, p3);
  EXPECT_GT(std::count(p1.begin(), p1.end(), 'x'), 20);
  EXPECT_GT(std::count(p1.begin(), p1.end(), '.'), 20);
}

TEST(FaultTransportTest, CorruptWriteFlipsOneByteInTransitNotInTheSource) {
  auto t = MakeFault({{"corrupt", "1"}, {"seed", "3"}});
  ASSERT_TRUE(t);
  std::vector<char> a(4096), b(4096);
  FillRandom(a.data(), a.size(), 9);
  std::vector<char> orig = a;
  for (const Status& s : RunSlices(*t, Writes(a, b, 4096))) EXPECT_TRUE(s.ok());
  EXPECT_TRUE(SameBytes(a.data(), orig.data(), a.size())) << "source modified";
  size_t diffs = 0;
  for (size_t i = 0; i < a.size(); ++i) diffs += a[i] != b[i];
  EXPECT_EQ(diffs, 1u);
  EXPECT_EQ(static_cast<FaultTransport*>(t.get())->corrupted(), 1u);
}

TEST(FaultTransportTest, CorruptReadFlipsOneByteOfTheDestination) {
  auto t = MakeFault({{"corrupt", "1"}});
  ASSERT_TRUE(t);
  std::vector<char> remote(4096), local(4096);
  FillRandom(remote.data(), remote.size(), 4);
  auto st = RunSlices(*t, {{TransferOp::kRead, local.data(), Addr(remote.data()), 4096, nullptr}});
  EXPECT_TRUE(st[0].ok());
  size_t diffs = 0;
  for (size_t i = 0; i < 4096; ++i) diffs += local[i] != remote[i];
  EXPECT_EQ(diffs, 1u);
}

TEST(FaultTransportTest, DelayAddsLatencyAndRespectsTheDeadline) {
  auto t = MakeFault({{"delay_ms", "80"}});
  ASSERT_TRUE(t);
  std::vector<char> a(100, 'x'), b(100);
  auto start = SteadyClock::now();
  EXPECT_TRUE(RunSlices(*t, Writes(a, b, 100))[0].ok());
  EXPECT_GE(SteadyClock::now() - start, std::chrono::milliseconds(80));
  start = SteadyClock::now();
  auto st = RunSlices(*t, Writes(a, b, 100), Deadline::In(std::chrono::milliseconds(20)));
  EXPECT_EQ(st[0].code(), StatusCode::kDeadlineExceeded) << st[0].ToString();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::milliseconds(70)) << "waited for the delay";
}

TEST(FaultTransportTest, KillAfterBytesFailsEveryLaterSliceUntilForgetPeer) {
  auto t = MakeFault({{"kill_after_bytes", "10000"}});
  ASSERT_TRUE(t);
  std::vector<char> a(4096 * 5, 'k'), b(4096 * 5);
  auto st = RunSlices(*t, Writes(a, b, 4096));
  EXPECT_TRUE(st[0].ok() && st[1].ok());
  for (size_t i = 2; i < st.size(); ++i) EXPECT_EQ(st[i].code(), StatusCode::kUnavailable);
  EXPECT_EQ(RunSlices(*t, Writes(a, b, 4096))[0].code(), StatusCode::kUnavailable) << "stays dead";
  t->ForgetPeer("any");
  EXPECT_TRUE(RunSlices(*t, Writes(a, b, 4096))[0].ok()) << "a new connection works again";
}

TEST(FaultTransportTest, BadOptionsAreRefused) {
  RegisterLoopbackOnce();
  TransportOptions o;
  o.extra = {{"drop", "1.5"}};
  EXPECT_EQ(TransportRegistry::Create("fault:test_loopback", o, nullptr).status().code(),
            StatusCode::kInvalidArgument);
  o.extra = {{"delay_ms", "-1"}};
  EXPECT_EQ(TransportRegistry::Create("fault:test_loopback", o, nullptr).status().code(),
            StatusCode::kInvalidArgument);
  o.extra = {};
  EXPECT_EQ(TransportRegistry::Create("fault", o, nullptr).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(TransportRegistry::Create("fault:nosuch", o, nullptr).status().code(),
            StatusCode::kNotFound);
}

TEST(FaultTransportTest, DestructionAbortsDelayedSlices) {
  auto t = MakeFault({{"delay_ms", "10000"}});
  ASSERT_TRUE(t);
  std::vector<char> a(100), b(100);
  std::atomic<int> aborted{0}, calls{0};
  std::vector<Slice> v = Writes(a, b, 10);
  for (Slice& s : v) {
    s.done = [&](const Status& st) {
      ++calls;
      aborted += st.code() == StatusCode::kAborted;
    };
  }
  t->Submit(SegmentDescriptor{}, v, Deadline::In(std::chrono::seconds(30)));
  auto start = SteadyClock::now();
  t.reset();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(calls.load(), 10);
  EXPECT_EQ(aborted.load(), 10);
}

}  // namespace
}  // namespace ferry::transfer::fault
