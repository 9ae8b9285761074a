// UcxTransport driven directly (no engine): two transports in this process, or a target in
// a child process (ucx_test_peer) that is killed or stopped, over UCX's tcp and its
// shared-memory transports. Byte-exact writes and reads, many slices from several threads,
// refused ranges and peers, malformed peer info, unregistered buffers, dead and stopped
// peers, deadlines, destruction with slices in flight, and bad settings.
#include "transfer/ucx/ucx_transport.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "piped_child.h"
#include "test_util.h"
#include "transfer/ucx/ucx_peer_info.h"
#include "transfer/ucx/ucx_settings.h"
#include "ucx_test_host.h"

namespace ferry::transfer::ucx {
namespace {

using ::ferry::testing::FillRandom;
using ::ferry::testing::PipedChild;
using ::ferry::testing::SameBytes;
using namespace std::chrono_literals;

uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Anonymous memory, unmapped on destruction.
struct Mem {
  explicit Mem(size_t n) : size(n) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    data = static_cast<char*>(p);
  }
  ~Mem() { ::munmap(data, size); }
  char* data;
  size_t size;
};

// One side: a host and the ucx transport serving it.
struct Side {
  std::unique_ptr<UcxTestHost> host;
  std::unique_ptr<Transport> t;
  UcxTransport* ucx() { return static_cast<UcxTransport*>(t.get()); }
};

// UCX 1.13's shared-memory transports need error mode none (see ucx_settings.h).
TransportOptions Options(const std::string& tls) {
  TransportOptions o;
  o.extra = {{"ucx_tls", tls}};
  if (tls == "sm") o.extra.emplace_back("ucx_err_mode", "none");
  return o;
}

Side MakeSide(const std::string& tls, const std::string& name) {
  Side s;
  s.host = std::make_unique<UcxTestHost>(name);
  auto t = TransportRegistry::Create("ucx", Options(tls), s.host.get());
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (t.ok()) s.t = std::move(*t);
  s.host->set_transport(s.t.get());
  return s;
}

// Tracks the completions of a set of slices: each done() must run exactly once.
class Completions {
 public:
  explicit Completions(size_t n) : st_(n), calls_(n, 0), left_(n) {}
  std::function<void(const Status&)> Callback(size_t i) {
    return [this, i](const Status& s) {
      std::lock_guard lock(mu_);
      st_[i] = s;
      if (calls_[i]++ == 0) --left_;
      cv_.notify_all();
    };
  }
  // Waits until all ran (true) or `timeout` passed (false).
  bool Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return left_ == 0; });
  }
  std::vector<Status> statuses() {
    std::lock_guard lock(mu_);
    for (int c : calls_) EXPECT_LE(c, 1) << "done() ran more than once";
    return st_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> st_;
  std::vector<int> calls_;
  size_t left_;
};

// Runs slices and waits (bounded) for all of them; fails the test if one never completes.
std::vector<Status> RunSlices(Transport& t, const SegmentDescriptor& peer,
                              std::vector<Slice> slices, Deadline deadline = Deadline::In(20s)) {
  auto c = std::make_shared<Completions>(slices.size());
  for (size_t i = 0; i < slices.size(); ++i) slices[i].done = c->Callback(i);
  t.Submit(peer, slices, deadline);
  EXPECT_TRUE(c->Wait(30s)) << "some slices never completed";
  return c->statuses();
}

Slice MakeSlice(TransferOp op, void* local, uint64_t remote, size_t n) {
  Slice s;
  s.op = op;
  s.local = static_cast<char*>(local);
  s.remote = remote;
  s.length = n;
  return s;
}

Status RunOne(Transport& t, const SegmentDescriptor& peer, TransferOp op, void* local,
              uint64_t remote, size_t n, Deadline deadline = Deadline::In(20s)) {
  return RunSlices(t, peer, {MakeSlice(op, local, remote, n)}, deadline)[0];
}

// ---- a target in another process -------------------------------------------------------

// The ucx test peer (ucx_test_peer_main.cc): "READY <descriptor JSON>" once it serves.
class UcxPeerProcess : public PipedChild {
 public:
  UcxPeerProcess(const std::string& tls, size_t bytes)
      : PipedChild({FERRY_UCX_TEST_PEER, tls, std::to_string(bytes)}) {
    std::string line = ReadLine(10s);
    EXPECT_EQ(line.rfind("READY ", 0), 0u) << "peer said: " << line;
    if (line.rfind("READY ", 0) == 0) {
      auto d = SegmentDescriptor::FromJson(line.substr(6));
      EXPECT_TRUE(d.ok()) << d.status().ToString();
      if (d.ok()) desc_ = *d;
    }
  }
  void Stop() { Signal(SIGSTOP); }
  void Continue() { Signal(SIGCONT); }
  const SegmentDescriptor& desc() const { return desc_; }
  uint64_t addr() const { return desc_.buffers.empty() ? 0 : desc_.buffers[0].addr; }

 private:
  SegmentDescriptor desc_;
};

// ---- tests over each UCX medium ----------------------------------------------------------

class UcxTransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    target_ = MakeSide(GetParam(), "target:1");
    initiator_ = MakeSide(GetParam(), "initiator:1");
    ASSERT_NE(target_.t, nullptr);
    ASSERT_NE(initiator_.t, nullptr);
  }
  SegmentDescriptor Peer() const { return target_.host->LocalDescriptor(); }

  Side target_;
  Side initiator_;
};

TEST_P(UcxTransportTest, PublishesWorkerAndBuffers) {
  Mem buf(1 << 20);
  target_.host->Register(buf.data, buf.size);
  SegmentDescriptor d = Peer();
  ASSERT_EQ(d.transport_info.count("ucx"), 1u);
  auto info = UcxPeerInfo::Parse(d.transport_info["ucx"]);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_FALSE(info->worker_address.empty());
  ASSERT_EQ(info->buffers.size(), 1u);
  EXPECT_EQ(info->buffers[0].addr, Addr(buf.data));
  EXPECT_EQ(info->buffers[0].length, buf.size);
  EXPECT_TRUE(initiator_.t->CanReach(d));
  EXPECT_FALSE(initiator_.t->same_host_only());
}

TEST_P(UcxTransportTest, WritesAndReadsAreByteExactFrom1ByteTo64MiBUnaligned) {
  constexpr size_t kMax = 64u << 20;
  Mem remote(kMax + 64), src(kMax + 64), back(kMax + 64);
  target_.host->Register(remote.data, remote.size);
  const SegmentDescriptor peer = Peer();
  uint64_t seed = 1;
  for (size_t n : {size_t{1}, size_t{7}, size_t{4095}, size_t{4099}, size_t{65537},
                   size_t{(1u << 20) + 5}, size_t{(16u << 20) + 1}, kMax - 3}) {
    SCOPED_TRACE("bytes " + std::to_string(n));
    char* from = src.data + 1;
    uint64_t to = Addr(remote.data) + 3;
    FillRandom(from, n, seed++);
    std::memset(remote.data, 0, n + 16);
    ASSERT_TRUE(RunOne(*initiator_.t, peer, TransferOp::kWrite, from, to, n).ok());
    EXPECT_TRUE(SameBytes(remote.data + 3, from, n));
    EXPECT_EQ(remote.data[2], 0);
    EXPECT_EQ(remote.data[3 + n], 0);  // nothing past the range
    std::memset(back.data, 0, n + 16);
    ASSERT_TRUE(RunOne(*initiator_.t, peer, TransferOp::kRead, back.data + 5, to, n).ok());
    EXPECT_TRUE(SameBytes(back.data + 5, from, n));
    EXPECT_EQ(back.data[5 + n], 0);
  }
  UcxCounters c = initiator_.ucx()->counters();
  EXPECT_EQ(c.slices_done, 16u);
  EXPECT_EQ(c.slices_failed, 0u);
  EXPECT_GT(c.bytes_written, kMax);
  EXPECT_GT(c.bytes_read, kMax);
  EXPECT_EQ(c.endpoints_created, 1u);
}

TEST_P(UcxTransportTest, ManySlicesInFlightFromSeveralThreads) {
  constexpr int kThreads = 4, kSlices = 64;
  constexpr size_t kSlice = (64u << 10) + 3;
  constexpr size_t kPerThread = kSlices * kSlice;
  Mem remote(kThreads * kPerThread), src(kThreads * kPerThread), back(kThreads * kPerThread);
  target_.host->Register(remote.data, remote.size);
  FillRandom(src.data, src.size, 42);
  const SegmentDescriptor peer = Peer();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread writes its own region in several submissions, then reads it back.
      for (TransferOp op : {TransferOp::kWrite, TransferOp::kRead}) {
        std::vector<Slice> slices;
        for (int i = 0; i < kSlices; ++i) {
          size_t off = t * kPerThread + i * kSlice;
          char* local = op == TransferOp::kWrite ? src.data + off : back.data + off;
          slices.push_back(MakeSlice(op, local, Addr(remote.data) + off, kSlice));
        }
        for (int part = 0; part < 4; ++part) {
          std::vector<Slice> some(slices.begin() + part * 16, slices.begin() + (part + 1) * 16);
          for (const Status& s : RunSlices(*initiator_.t, peer, some)) failures += s.ok() ? 0 : 1;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(SameBytes(remote.data, src.data, src.size));
  EXPECT_TRUE(SameBytes(back.data, src.data, src.size));
}

TEST_P(UcxTransportTest, ManySlicesOfOneSubmissionInFlight) {
  constexpr int kSlices = 64;
  constexpr size_t kSlice = 1u << 20;
  Mem remote(kSlices * kSlice), src(kSlices * kSlice);
  target_.host->Register(remote.data, remote.size);
  FillRandom(src.data, src.size, 9);
  std::vector<Slice> slices;
  for (int i = 0; i < kSlices; ++i) {
    slices.push_back(MakeSlice(TransferOp::kWrite, src.data + i * kSlice,
                               Addr(remote.data) + i * kSlice, kSlice));
  }
  for (const Status& s : RunSlices(*initiator_.t, Peer(), slices))
    EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(remote.data, src.data, src.size));
}

TEST_P(UcxTransportTest, RangeOutsideThePeersUcxBuffersIsRefused) {
  Mem remote(1 << 20), src(1 << 20);
  target_.host->Register(remote.data, remote.size);
  const SegmentDescriptor peer = Peer();
  const uint64_t end = Addr(remote.data) + remote.size;
  std::vector<Status> st = RunSlices(*initiator_.t, peer,
                                     {MakeSlice(TransferOp::kWrite, src.data, end - 10, 11),
                                      MakeSlice(TransferOp::kRead, src.data, end, 1),
                                      MakeSlice(TransferOp::kWrite, src.data, Addr(remote.data), 0),
                                      MakeSlice(TransferOp::kWrite, src.data, end - 10, 10)});
  EXPECT_EQ(st[0].code(), StatusCode::kPermissionDenied) << st[0].ToString();
  EXPECT_EQ(st[1].code(), StatusCode::kPermissionDenied) << st[1].ToString();
  EXPECT_TRUE(st[2].ok()) << st[2].ToString();  // an empty slice completes at once
  EXPECT_TRUE(st[3].ok()) << st[3].ToString();
  EXPECT_TRUE(initiator_.t->CanReach(peer));  // the data was refused, not the peer
}

TEST_P(UcxTransportTest, MalformedPeerInfoIsRefusedWithoutACrash) {
  Mem remote(4096), src(4096);
  target_.host->Register(remote.data, remote.size);
  SegmentDescriptor good = Peer();
  const std::string worker =
      crypto::HexEncode(UcxPeerInfo::Parse(good.transport_info["ucx"])->worker_address);
  std::vector<std::string> bad = {
      "",
      "not json",
      "[]",
      "{\"worker\":\"zz\",\"buffers\":[]}",
      "{\"worker\":\"abc\",\"buffers\":[]}",
      "{\"worker\":\"\",\"buffers\":[]}",
      "{\"worker\":\"" + worker + "\"}",
      "{\"worker\":\"" + worker + "\",\"buffers\":{}}",
      "{\"worker\":\"" + worker + "\",\"buffers\":[{\"addr\":-1,\"len\":1,\"rkey\":\"00\"}]}",
      "{\"worker\":\"" + worker + "\",\"buffers\":[{\"addr\":1,\"len\":0,\"rkey\":\"00\"}]}",
      "{\"worker\":\"" + worker +
          "\",\"buffers\":[{\"addr\":18446744073709551615,\"len\":2,\"rkey\":\"00\"}]}",
      "{\"worker\":\"" + worker +
          "\",\"buffers\":[{\"addr\":100,\"len\":10,\"rkey\":\"00\"},"
          "{\"addr\":105,\"len\":10,\"rkey\":\"00\"}]}",
      "{\"worker\":\"" + worker + "\",\"buffers\":[{\"addr\":1,\"len\":1,\"rkey\":7}]}",
      std::string(2u << 20, '['),
      "{\"worker\":\"" + std::string(UcxPeerInfo::kMaxWorkerAddressBytes * 2 + 2, 'a') +
          "\",\"buffers\":[]}",
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    SegmentDescriptor d = good;
    d.name = "liar" + std::to_string(i) + ":1";
    d.transport_info["ucx"] = bad[i];
    EXPECT_FALSE(initiator_.t->CanReach(d));
    Status s = RunOne(*initiator_.t, d, TransferOp::kWrite, src.data, Addr(remote.data), 16);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find("malformed"), std::string::npos) << s.message();
  }
  SegmentDescriptor none = good;
  none.transport_info.erase("ucx");
  EXPECT_FALSE(initiator_.t->CanReach(none));
  // The refusal is remembered even when the liar later publishes good info, until the
  // engine forgets the peer.
  SegmentDescriptor corrected = good;
  corrected.name = "liar0:1";
  corrected.version = good.version + 1;
  EXPECT_FALSE(initiator_.t->CanReach(corrected));
  initiator_.t->ForgetPeer("liar0:1");
  EXPECT_TRUE(initiator_.t->CanReach(corrected));
  EXPECT_TRUE(
      RunOne(*initiator_.t, corrected, TransferOp::kWrite, src.data, Addr(remote.data), 16).ok());
  EXPECT_TRUE(initiator_.t->CanReach(good));
}

TEST_P(UcxTransportTest, UnregisteredBufferIsNoLongerWritten) {
  Mem a(1 << 20), b(1 << 20), src(1 << 20);
  target_.host->Register(a.data, a.size);
  target_.host->Register(b.data, b.size);
  FillRandom(src.data, src.size, 3);
  ASSERT_TRUE(RunOne(*initiator_.t, Peer(), TransferOp::kWrite, src.data, Addr(b.data), 4096).ok());
  EXPECT_TRUE(SameBytes(b.data, src.data, 4096));
  target_.host->Unregister(b.data);
  std::memset(b.data, 0x77, b.size);  // "freed" and reused by the target
  const SegmentDescriptor after = Peer();
  auto info = UcxPeerInfo::Parse(after.transport_info.at("ucx"));
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->buffers.size(), 1u);
  Status s = RunOne(*initiator_.t, after, TransferOp::kWrite, src.data, Addr(b.data), 4096);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  for (size_t i = 0; i < b.size; ++i) ASSERT_EQ(b.data[i], 0x77) << "byte " << i << " was written";
  // The buffer still registered keeps working on the same endpoint.
  EXPECT_TRUE(RunOne(*initiator_.t, after, TransferOp::kWrite, src.data, Addr(a.data), 4096).ok());
  EXPECT_TRUE(SameBytes(a.data, src.data, 4096));
  EXPECT_TRUE(initiator_.t->CanReach(after));
}

TEST_P(UcxTransportTest, AllocatedMemoryIsServedUntilFreed) {
  ASSERT_TRUE(target_.t->allocates_memory());
  constexpr size_t kBytes = 8u << 20;
  auto p = target_.t->AllocateMemory(kBytes);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  char* mem = static_cast<char*>(*p);
  EXPECT_EQ(Addr(mem) % ::sysconf(_SC_PAGESIZE), 0u);
  std::memset(mem, 0, kBytes);  // ours to use as any memory
  target_.host->Register(mem, kBytes);
  Mem src(kBytes), back(kBytes);
  FillRandom(src.data, src.size, 11);
  const size_t n = (1u << 20) + 5;
  ASSERT_TRUE(RunOne(*initiator_.t, Peer(), TransferOp::kWrite, src.data, Addr(mem) + 3, n).ok());
  EXPECT_TRUE(SameBytes(mem + 3, src.data, n));
  EXPECT_EQ(mem[2], 0);
  EXPECT_EQ(mem[3 + n], 0);
  ASSERT_TRUE(RunOne(*initiator_.t, Peer(), TransferOp::kRead, back.data, Addr(mem) + 3, n).ok());
  EXPECT_TRUE(SameBytes(back.data, src.data, n));
  // Registered memory is not freed; unregistered, it is, once.
  EXPECT_EQ(target_.t->FreeMemory(mem).code(), StatusCode::kFailedPrecondition);
  target_.host->Unregister(mem);
  EXPECT_EQ(RunOne(*initiator_.t, Peer(), TransferOp::kWrite, src.data, Addr(mem), 16).code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(target_.t->FreeMemory(mem).ok());
  EXPECT_EQ(target_.t->FreeMemory(mem).code(), StatusCode::kNotFound);
  Mem other(4096);
  EXPECT_EQ(target_.t->FreeMemory(other.data).code(), StatusCode::kNotFound);
  EXPECT_EQ(target_.t->AllocateMemory(0).status().code(), StatusCode::kInvalidArgument);
  // Memory still allocated when the transport goes is freed by its destructor.
  auto left = target_.t->AllocateMemory(1 << 20);
  ASSERT_TRUE(left.ok()) << left.status().ToString();
}

TEST_P(UcxTransportTest, PeerThatRestartsGetsANewEndpoint) {
  Mem remote(1 << 20), src(4096);
  target_.host->Register(remote.data, remote.size);
  ASSERT_TRUE(
      RunOne(*initiator_.t, Peer(), TransferOp::kWrite, src.data, Addr(remote.data), 64).ok());
  // Same name, a new transport (worker address) behind it.
  target_.host->set_transport(nullptr);
  target_.t.reset();
  auto t = TransportRegistry::Create("ucx", Options(GetParam()), target_.host.get());
  ASSERT_TRUE(t.ok());
  target_.t = std::move(*t);
  target_.host->set_transport(target_.t.get());
  target_.host->Register(src.data, 1);  // remaps (the new transport has not seen remote yet)
  FillRandom(src.data, 64, 5);
  Status s = RunOne(*initiator_.t, Peer(), TransferOp::kWrite, src.data, Addr(remote.data), 64);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(remote.data, src.data, 64));
  EXPECT_EQ(initiator_.ucx()->counters().endpoints_created, 2u);
}

// Peers that die or stop, over tcp only: with UCX 1.13's shared-memory transports (error
// mode none) an endpoint closed at a deadline can keep operations queued that UCX runs
// later, when the peer resumes (a crash seen here, see docs/ucx.md); that is not a
// configuration to rely on under faults.
class UcxPeerFaultTest : public UcxTransportTest {};

TEST_P(UcxPeerFaultTest, DeadPeerFailsItsSlicesWithinTheDeadline) {
  UcxPeerProcess peer(GetParam(), 256u << 20);
  ASSERT_NE(peer.addr(), 0u);
  Mem src(256u << 20);
  FillRandom(src.data, 4096, 1);
  ASSERT_TRUE(
      RunOne(*initiator_.t, peer.desc(), TransferOp::kWrite, src.data, peer.addr(), 4096).ok());
  // Keep 16 x 4 MiB in flight, submission after submission, and kill the peer meanwhile.
  constexpr size_t kSlice = 4u << 20;
  const Deadline deadline = Deadline::In(15s);
  std::vector<std::shared_ptr<Completions>> all;
  auto start = std::chrono::steady_clock::now();
  std::thread killer([&] {
    std::this_thread::sleep_for(100ms);
    peer.Kill();
  });
  while (std::chrono::steady_clock::now() - start < 400ms) {
    std::vector<Slice> slices;
    for (int i = 0; i < 16; ++i) {
      slices.push_back(MakeSlice(TransferOp::kWrite, src.data + (i * kSlice) % src.size,
                                 peer.addr() + (i * kSlice) % src.size, kSlice));
    }
    auto c = std::make_shared<Completions>(slices.size());
    for (size_t i = 0; i < slices.size(); ++i) slices[i].done = c->Callback(i);
    initiator_.t->Submit(peer.desc(), slices, deadline);
    all.push_back(c);
    ASSERT_TRUE(c->Wait(20s));
    if (deadline.Expired()) break;
  }
  killer.join();
  size_t failed = 0;
  for (auto& c : all) {
    for (const Status& s : c->statuses()) {
      if (!s.ok()) {
        ++failed;
        EXPECT_TRUE(s.code() == StatusCode::kUnavailable ||
                    s.code() == StatusCode::kDeadlineExceeded)
            << s.ToString();
      }
    }
  }
  EXPECT_GT(failed, 0u) << "no slice failed although the peer was killed";
  EXPECT_FALSE(deadline.Expired()) << "the dead peer was noticed only at the deadline";
  // Later submissions to the dead process fail too.
  Status s = RunOne(*initiator_.t, peer.desc(), TransferOp::kWrite, src.data, peer.addr(), 4096,
                    Deadline::In(5s));
  EXPECT_FALSE(s.ok());
}

TEST_P(UcxPeerFaultTest, StoppedPeerFailsAtTheDeadline) {
  UcxPeerProcess peer(GetParam(), 64u << 20);
  ASSERT_NE(peer.addr(), 0u);
  Mem src(64u << 20);
  ASSERT_TRUE(
      RunOne(*initiator_.t, peer.desc(), TransferOp::kWrite, src.data, peer.addr(), 4096).ok());
  peer.Stop();
  auto start = std::chrono::steady_clock::now();
  std::vector<Slice> slices;
  for (int i = 0; i < 16; ++i) {
    slices.push_back(MakeSlice(TransferOp::kWrite, src.data + i * (4u << 20),
                               peer.addr() + i * (4u << 20), 4u << 20));
  }
  std::vector<Status> st = RunSlices(*initiator_.t, peer.desc(), slices, Deadline::In(1500ms));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 4s);
  // Nobody acknowledges the data: every slice fails at its deadline.
  for (const Status& s : st) EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_GE(took, 1400ms);
  EXPECT_EQ(initiator_.ucx()->counters().deadline_closes, 1u);
  peer.Continue();
  // The next submission makes a new endpoint and works.
  FillRandom(src.data, 4096, 8);
  Status s = RunOne(*initiator_.t, peer.desc(), TransferOp::kWrite, src.data, peer.addr(), 4096);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<char> back(4096);
  s = RunOne(*initiator_.t, peer.desc(), TransferOp::kRead, back.data(), peer.addr(), 4096);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(back.data(), src.data, 4096));
}

TEST_P(UcxPeerFaultTest, DestructionWithSlicesInFlightAborts) {
  UcxPeerProcess peer(GetParam(), 64u << 20);
  ASSERT_NE(peer.addr(), 0u);
  Mem src(64u << 20);
  ASSERT_TRUE(
      RunOne(*initiator_.t, peer.desc(), TransferOp::kWrite, src.data, peer.addr(), 4096).ok());
  peer.Stop();
  auto c = std::make_shared<Completions>(16);
  std::vector<Slice> slices;
  for (int i = 0; i < 16; ++i) {
    slices.push_back(MakeSlice(i % 2 ? TransferOp::kRead : TransferOp::kWrite,
                               src.data + i * (4u << 20), peer.addr() + i * (4u << 20), 4u << 20));
    slices.back().done = c->Callback(i);
  }
  initiator_.t->Submit(peer.desc(), slices, Deadline::In(60s));
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();
  initiator_.host->set_transport(nullptr);
  initiator_.t.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_TRUE(c->Wait(1s)) << "destruction left slices without a completion";
  for (const Status& s : c->statuses()) EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  peer.Continue();
}

INSTANTIATE_TEST_SUITE_P(Media, UcxPeerFaultTest, ::testing::Values("tcp"));
INSTANTIATE_TEST_SUITE_P(Media, UcxTransportTest, ::testing::Values("tcp", "sm"),
                         [](const auto& info) { return info.param; });

// ---- not per medium ------------------------------------------------------------------------

TEST(UcxTransportRefusal, PeerWithoutACommonTransportIsRefusedUntilForgotten) {
  // The target speaks shared memory only, the initiator tcp only: no endpoint can be made.
  Side target = MakeSide("sm", "sm-only:1");
  Side initiator = MakeSide("tcp", "tcp-only:1");
  Mem remote(4096), src(4096);
  target.host->Register(remote.data, remote.size);
  const SegmentDescriptor peer = target.host->LocalDescriptor();
  EXPECT_TRUE(initiator.t->CanReach(peer));
  Status s = RunOne(*initiator.t, peer, TransferOp::kWrite, src.data, Addr(remote.data), 16);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_FALSE(initiator.t->CanReach(peer)) << "a refused peer must turn CanReach false";
  initiator.t->ForgetPeer(peer.name);
  EXPECT_TRUE(initiator.t->CanReach(peer));
}

TEST(UcxTransportSettings, BadSettingsAreInvalidArgumentNamingThem) {
  struct Case {
    std::string device;
    std::vector<std::pair<std::string, std::string>> extra;
    std::string named;
  };
  std::vector<Case> cases = {
      {"", {{"ucx_tls", "bogus"}}, "ucx_tls"},
      {"", {{"ucx_tls", "tcp,,sm"}}, "ucx_tls"},
      {"mlx5_0:1;rm -rf", {}, "device_name"},
      {"eth0,", {}, "device_name"},
      {"", {{"ucx_rndv_rails", "0"}}, "ucx_rndv_rails"},
      {"", {{"ucx_poll_us", "abc"}}, "ucx_poll_us"},
      {"", {{"ucx_bogus", "1"}}, "ucx_bogus"},
  };
  for (const Case& c : cases) {
    TransportOptions o;
    o.device_name = c.device;
    o.extra = c.extra;
    auto t = TransportRegistry::Create("ucx", o, nullptr);
    ASSERT_FALSE(t.ok()) << c.named;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << t.status().ToString();
    EXPECT_NE(t.status().message().find(c.named), std::string::npos) << t.status().ToString();
  }
  // Keys of other transports are not ours to judge.
  TransportOptions o = Options("tcp");
  o.extra.emplace_back("tcp_idle_timeout_s", "1");
  EXPECT_TRUE(TransportRegistry::Create("ucx", o, nullptr).ok());
}

TEST(UcxTransportSettings, NoUsableTransportIsUnavailable) {
  // Well-formed, but this host has no such hardware (no RDMA NIC here).
  TransportOptions o = Options("rc");
  o.device_name = "mlx5_9:1";
  auto t = TransportRegistry::Create("ucx", o, nullptr);
  if (t.ok()) {
    // UCX created a context anyway: it must then refuse every peer rather than crash.
    Side target = MakeSide("tcp", "t:1");
    Mem remote(4096), src(4096);
    target.host->Register(remote.data, remote.size);
    Status s = RunOne(**t, target.host->LocalDescriptor(), TransferOp::kWrite, src.data,
                      Addr(remote.data), 16);
    EXPECT_FALSE(s.ok());
  } else {
    EXPECT_EQ(t.status().code(), StatusCode::kUnavailable) << t.status().ToString();
    EXPECT_NE(t.status().message().find("UCX_TLS=rc"), std::string::npos) << t.status().ToString();
  }
}

TEST(UcxPeerInfoTest, RoundTripsAndFindsRanges) {
  UcxPeerInfo info;
  info.worker_address = std::string("\x00\x01\xfe\xff", 4);
  info.buffers = {{100, 10, "k1"}, {200, 50, std::string("\0", 1)}};
  auto back = UcxPeerInfo::Parse(info.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->worker_address, info.worker_address);
  ASSERT_EQ(back->buffers.size(), 2u);
  EXPECT_EQ(back->buffers[1].rkey, std::string("\0", 1));
  EXPECT_EQ(back->Find(100, 10), &back->buffers[0]);
  EXPECT_EQ(back->Find(105, 6), nullptr);
  EXPECT_EQ(back->Find(150, 1), nullptr);
  EXPECT_EQ(back->Find(249, 1), &back->buffers[1]);
  EXPECT_EQ(back->Find(99, 1), nullptr);
  EXPECT_EQ(FromHex("0g").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::transfer::ucx
