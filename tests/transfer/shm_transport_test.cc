// ShmTransport and CmaCopy, driven directly (no engine): into our own pid, into a forked
// child (a real second address space), short copies, unmapped ranges, dead and refused
// peers, deadlines and shutdown.
#include "transfer/shm/shm_transport.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "test_util.h"

namespace ferry::transfer::shm {
namespace {

using ::ferry::testing::FillRandom;
using ::ferry::testing::SameBytes;

uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

SegmentDescriptor Peer(int64_t pid, const std::string& host_id) {
  SegmentDescriptor d;
  d.name = "127.0.0.1:1";
  d.pid = pid;
  d.host_id = host_id;
  d.transports = {"tcp", "shm"};
  return d;
}

// Runs slices through `t` and waits (bounded) until every done() has run; returns the
// statuses, and fails the test if any done() ran twice.
std::vector<Status> RunSlices(Transport& t, const SegmentDescriptor& peer,
                              std::vector<Slice> slices,
                              Deadline deadline = Deadline::In(std::chrono::seconds(10))) {
  struct Shared {
    std::mutex mu;
    std::vector<Status> st;
    std::vector<int> calls;
    size_t left;
  };
  auto sh = std::make_shared<Shared>();
  sh->st.resize(slices.size());
  sh->calls.resize(slices.size());
  sh->left = slices.size();
  for (size_t i = 0; i < slices.size(); ++i) {
    slices[i].done = [sh, i](const Status& s) {
      std::lock_guard<std::mutex> lock(sh->mu);
      sh->st[i] = s;
      if (sh->calls[i]++ == 0) --sh->left;
    };
  }
  t.Submit(peer, slices, deadline);
  Deadline wait = Deadline::In(std::chrono::seconds(20));
  while (!wait.Expired()) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      if (sh->left == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::lock_guard<std::mutex> lock(sh->mu);
  EXPECT_EQ(sh->left, 0u) << "some slices never completed";
  for (int c : sh->calls) EXPECT_LE(c, 1) << "done() ran more than once";
  return sh->st;
}

std::unique_ptr<ShmTransport> MakeShm(CmaCalls calls = RealCmaCalls(), int threads = 2) {
  TransportOptions o;
  o.extra = {{"shm_threads", std::to_string(threads)}};
  auto t = ShmTransport::Create(o, nullptr, calls);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(ShmTransportTest, WritesAndReadsOwnProcessSmallInlineAndLargeOnWorkers) {
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  SegmentDescriptor self = Peer(::getpid(), shm->host_id());
  ASSERT_TRUE(shm->CanReach(self));
  for (size_t n : {size_t{1}, size_t{4096}, size_t{3} << 20}) {
    SCOPED_TRACE(n);
    std::vector<char> src(n + 7), dst(n + 7), back(n + 7);
    FillRandom(src.data(), src.size(), n);
    // Cut into 1 MiB slices at unaligned offsets.
    std::vector<Slice> w, r;
    for (size_t off = 0; off < n; off += 1 << 20) {
      size_t len = std::min<size_t>(1 << 20, n - off);
      w.push_back({TransferOp::kWrite, &src[3 + off], Addr(&dst[5 + off]), len, nullptr});
      r.push_back({TransferOp::kRead, &back[1 + off], Addr(&dst[5 + off]), len, nullptr});
    }
    for (const Status& s : RunSlices(*shm, self, w)) EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(SameBytes(&dst[5], &src[3], n));
    for (const Status& s : RunSlices(*shm, self, r)) EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(SameBytes(&back[1], &src[3], n));
  }
}

TEST(ShmTransportTest, MovesBytesIntoAndOutOfAForkedChild) {
  constexpr size_t kBytes = 6u << 20;  // > kInlineBytes: goes through the workers
  std::vector<char> remote(kBytes, 0), src(kBytes), back(kBytes);
  FillRandom(src.data(), kBytes, 42);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // Target: waits for the parent, then checks its own copy of `remote`.
    char c;
    ::close(go[1]);
    bool got = ::read(go[0], &c, 1) == 1;
    std::vector<char> expect(kBytes);
    FillRandom(expect.data(), kBytes, 42);
    ::_exit(got && std::memcmp(remote.data(), expect.data(), kBytes) == 0 ? 0 : 1);
  }
  ::close(go[0]);
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  SegmentDescriptor peer = Peer(child, shm->host_id());
  std::vector<Slice> w, r;
  for (size_t off = 0; off < kBytes; off += 1 << 20) {
    w.push_back({TransferOp::kWrite, &src[off], Addr(&remote[off]), 1 << 20, nullptr});
    r.push_back({TransferOp::kRead, &back[off], Addr(&remote[off]), 1 << 20, nullptr});
  }
  for (const Status& s : RunSlices(*shm, peer, w)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_NE(std::memcmp(remote.data(), src.data(), kBytes), 0)
      << "our own copy must be untouched: the bytes went to the child";
  for (const Status& s : RunSlices(*shm, peer, r)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(back.data(), src.data(), kBytes));
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child saw wrong bytes";
}

// A syscall that copies at most 1000 bytes per call, like a kernel returning short.
std::atomic<int> g_short_calls{0};
ssize_t ShortWrite(pid_t pid, const iovec* l, unsigned long ln, const iovec* r, unsigned long rn,
                   unsigned long f) {
  ++g_short_calls;
  iovec l1{l->iov_base, std::min<size_t>(l->iov_len, 1000)};
  iovec r1{r->iov_base, std::min<size_t>(r->iov_len, 1000)};
  return ::process_vm_writev(pid, &l1, 1, &r1, 1, f);
}

TEST(CmaCopyTest, ContinuesShortCopies) {
  std::vector<char> src(100'003), dst(100'003);
  FillRandom(src.data(), src.size(), 5);
  g_short_calls = 0;
  CmaCalls calls{&::process_vm_readv, &ShortWrite};
  Status s = CmaCopy(calls, ::getpid(), TransferOp::kWrite, src.data(), Addr(dst.data()),
                     src.size(), Deadline::In(std::chrono::seconds(5)));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(dst.data(), src.data(), src.size()));
  EXPECT_EQ(g_short_calls.load(), 101);
}

TEST(CmaCopyTest, UnmappedTailIsOutOfRangeAfterCopyingTheMappedPart) {
  long page = ::sysconf(_SC_PAGESIZE);
  char* m = static_cast<char*>(
      ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(::mprotect(m + page, page, PROT_NONE), 0);
  std::vector<char> src(2 * page, 'z');
  Status s = CmaCopy(RealCmaCalls(), ::getpid(), TransferOp::kWrite, src.data(), Addr(m + 100),
                     page, Deadline::In(std::chrono::seconds(5)));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
  EXPECT_EQ(m[100], 'z');
  EXPECT_EQ(m[page - 1], 'z') << "the mapped part is copied before the fault";
  ::munmap(m, 2 * page);
}

TEST(ShmTransportTest, BadRemoteAddressIsOutOfRange) {
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  std::vector<char> buf(64);
  auto st = RunSlices(*shm, Peer(::getpid(), shm->host_id()),
                      {{TransferOp::kRead, buf.data(), 8, buf.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kOutOfRange) << st[0].ToString();
  EXPECT_FALSE(shm->IsRefused(::getpid()));
}

TEST(ShmTransportTest, DeadPeerIsUnavailable) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  std::vector<char> buf(4096);
  auto st = RunSlices(*shm, Peer(child, shm->host_id()),
                      {{TransferOp::kWrite, buf.data(), Addr(buf.data()), buf.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kUnavailable) << st[0].ToString();
  EXPECT_FALSE(shm->IsRefused(child)) << "a dead peer is not a refusal";
}

// A kernel that refuses every attach (as with Yama ptrace_scope 3 or a seccomp filter).
ssize_t Refuse(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long) {
  errno = EPERM;
  return -1;
}

TEST(ShmTransportTest, RefusalIsUnimplementedAndRememberedUntilForgetPeer) {
  auto shm = MakeShm(CmaCalls{&Refuse, &Refuse});
  ASSERT_TRUE(shm);
  SegmentDescriptor peer = Peer(::getpid(), shm->host_id());
  ASSERT_TRUE(shm->CanReach(peer));
  std::vector<char> buf(1 << 20);
  std::vector<Slice> big;  // large enough for the workers
  for (int i = 0; i < 4; ++i) {
    big.push_back({TransferOp::kWrite, buf.data(), Addr(buf.data()), buf.size(), nullptr});
  }
  for (const Status& s : RunSlices(*shm, peer, big)) {
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.ToString();
  }
  EXPECT_FALSE(shm->CanReach(peer)) << "the engine must choose tcp for this peer now";
  shm->ForgetPeer(peer.name);
  EXPECT_TRUE(shm->CanReach(peer));
}

TEST(ShmTransportTest, RealKernelRefusalIsUnimplemented) {
  // As root: a child that drops to "nobody" may not attach to us (a root process).
  // Otherwise: pid 1 usually belongs to another user or namespace owner.
  int64_t target = ::geteuid() == 0 ? ::getpid() : 1;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && ::setuid(65534) != 0) ::_exit(2);
    TransportOptions o;
    auto shm = ShmTransport::Create(o, nullptr);
    if (!shm.ok()) ::_exit(3);
    char buf[64] = {};
    Status s = CmaCopy(RealCmaCalls(), static_cast<pid_t>(target), TransferOp::kRead, buf,
                       Addr(buf), sizeof(buf), Deadline::In(std::chrono::seconds(5)));
    if (s.ok()) ::_exit(4);  // the kernel allowed it: nothing to test here
    ::_exit(s.code() == StatusCode::kUnimplemented ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 4) GTEST_SKIP() << "the kernel allows CMA to pid " << target;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ShmTransportTest, CanReachNeedsSameHostShmAndAPid) {
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  SegmentDescriptor p = Peer(::getpid(), shm->host_id());
  EXPECT_TRUE(shm->CanReach(p));
  SegmentDescriptor other_host = p;
  other_host.host_id = "another-boot-id";
  EXPECT_FALSE(shm->CanReach(other_host));
  SegmentDescriptor no_shm = p;
  no_shm.transports = {"tcp"};
  EXPECT_FALSE(shm->CanReach(no_shm));
  SegmentDescriptor no_pid = p;
  no_pid.pid = 0;
  EXPECT_FALSE(shm->CanReach(no_pid));
}

TEST(ShmTransportTest, ExpiredDeadlineAndZeroLength) {
  auto shm = MakeShm();
  ASSERT_TRUE(shm);
  std::vector<char> a(4096), b(4096);
  SegmentDescriptor self = Peer(::getpid(), shm->host_id());
  auto st = RunSlices(*shm, self, {{TransferOp::kWrite, a.data(), Addr(b.data()), 4096, nullptr}},
                      Deadline::In(std::chrono::nanoseconds(0)));
  EXPECT_EQ(st[0].code(), StatusCode::kDeadlineExceeded) << st[0].ToString();
  st = RunSlices(*shm, self, {{TransferOp::kWrite, a.data(), Addr(b.data()), 0, nullptr}});
  EXPECT_TRUE(st[0].ok()) << st[0].ToString();
}

ssize_t SlowWrite(pid_t pid, const iovec* l, unsigned long ln, const iovec* r, unsigned long rn,
                  unsigned long f) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return ::process_vm_writev(pid, l, ln, r, rn, f);
}

TEST(ShmTransportTest, DestructionFailsQueuedSlicesWithAbortedExactlyOnce) {
  auto shm = MakeShm(CmaCalls{&::process_vm_readv, &SlowWrite}, 1);
  ASSERT_TRUE(shm);
  std::vector<char> a(1 << 20), b(1 << 20);
  constexpr int kSlices = 50;
  std::atomic<int> ok{0}, aborted{0}, other{0};
  std::vector<Slice> slices;
  for (int i = 0; i < kSlices; ++i) {
    slices.push_back({TransferOp::kWrite, a.data(), Addr(b.data()), a.size(), [&](const Status& s) {
                        (s.ok() ? ok : s.code() == StatusCode::kAborted ? aborted : other)++;
                      }});
  }
  shm->Submit(Peer(::getpid(), shm->host_id()), slices, Deadline::In(std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto start = SteadyClock::now();
  shm.reset();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(ok + aborted + other, kSlices);
  EXPECT_GT(aborted.load(), 0);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace ferry::transfer::shm
