// ShmTransport and CmaCopy, driven directly (no engine): into our own pid, into a forked
// child (a real second address space), short copies, unmapped ranges, dead and refused
// peers, deadlines and shutdown; and the same-host handshake that decides which process
// and which of its buffers a copy may touch.
#include "transfer/shm/shm_transport.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.h"

namespace ferry::transfer::shm {
namespace {

using ::ferry::testing::FillRandom;
using ::ferry::testing::SameBytes;

uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// The engine side of a target process, as far as shm needs it: its descriptor, with the
// buffers the test registers and what the transport adds (its session socket).
class TestHost : public TransportHost {
 public:
  explicit TestHost(std::string name = "127.0.0.1:1") : name_(std::move(name)) {}
  SegmentDescriptor LocalDescriptor() const override {
    std::lock_guard lock(mu_);
    SegmentDescriptor d;
    d.name = name_;
    d.pid = ::getpid();
    d.host_id = ReadHostId();
    d.transports = {"tcp", "shm"};
    d.buffers = buffers_;
    if (transport_ != nullptr) transport_->DescribeLocal(&d);
    return d;
  }
  Status CheckInboundRange(uint64_t, uint64_t) const override { return OkStatus(); }
  void DeliverNotification(Notification) override {}
  void CountInbound(TransferOp, uint64_t) override {}
  void CountRejected() override {}

  void set_transport(const Transport* t) {
    std::lock_guard lock(mu_);
    transport_ = t;
  }
  // Registers [p, p + n) (the transport is told, as the engine tells it).
  void Register(const void* p, size_t n) {
    {
      std::lock_guard lock(mu_);
      buffers_.push_back({Addr(p), n, "cpu", true});
      std::sort(buffers_.begin(), buffers_.end(),
                [](const auto& a, const auto& b) { return a.addr < b.addr; });
    }
    if (auto* t = const_cast<Transport*>(transport_)) t->LocalMemoryChanged();
  }
  void UnregisterAll() {
    {
      std::lock_guard lock(mu_);
      buffers_.clear();
    }
    if (auto* t = const_cast<Transport*>(transport_)) t->LocalMemoryChanged();
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::vector<BufferDescriptor> buffers_;
  const Transport* transport_ = nullptr;
};

// This process as a target: all of its (user-space) memory is registered, so that tests can
// copy between any two of their own buffers.
struct Self {
  TestHost host;
  std::unique_ptr<ShmTransport> shm;
  SegmentDescriptor peer;  // what an initiator would be told about this process
};

std::unique_ptr<Self> MakeSelf(CmaCalls calls = RealCmaCalls(), int threads = 2,
                               bool register_everything = true) {
  auto self = std::make_unique<Self>();
  TransportOptions o;
  o.extra = {{"shm_threads", std::to_string(threads)}};
  auto t = ShmTransport::Create(o, &self->host, calls);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return nullptr;
  self->shm = std::move(*t);
  self->host.set_transport(self->shm.get());
  if (register_everything) {
    self->host.Register(reinterpret_cast<void*>(uintptr_t{4096}), (uint64_t{1} << 47) - 4096);
  }
  self->peer = self->host.LocalDescriptor();
  return self;
}

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

TEST(ShmTransportTest, WritesAndReadsOwnProcessSmallInlineAndLargeOnWorkers) {
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  ShmTransport* shm = me->shm.get();
  const SegmentDescriptor& self = me->peer;
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

// A forked child that serves shm sessions for `buffer` (registered in its own address
// space), tells the parent its descriptor, then waits for the parent's byte on `go` and
// exits with check()'s verdict (0: good).
struct ChildTarget {
  pid_t pid = -1;
  int go = -1;
  SegmentDescriptor desc;

  // With a null `buffer` and `allocate` > 0 the child registers `allocate` bytes of its
  // transport's shared memory instead (its address in the child: *shared, for check()).
  static ChildTarget Start(const void* buffer, size_t len, std::function<int()> check,
                           std::string name = "127.0.0.1:2", size_t allocate = 0,
                           char** shared = nullptr) {
    ChildTarget c;
    int to_parent[2], go[2];
    if (::pipe(to_parent) != 0 || ::pipe(go) != 0) return c;
    c.pid = ::fork();
    if (c.pid == 0) {
      ::close(to_parent[0]);
      ::close(go[1]);
      TestHost host(name);
      TransportOptions o;
      auto shm = ShmTransport::Create(o, &host);
      if (!shm.ok()) ::_exit(10);
      host.set_transport(shm->get());
      if (buffer != nullptr) host.Register(buffer, len);
      if (buffer == nullptr && allocate > 0) {
        auto p = (*shm)->AllocateMemory(allocate);
        if (!p.ok()) ::_exit(13);
        *shared = static_cast<char*>(*p);
        host.Register(*shared, allocate);
      }
      std::string json = host.LocalDescriptor().ToJson() + "\n";
      if (::write(to_parent[1], json.data(), json.size()) != static_cast<ssize_t>(json.size())) {
        ::_exit(11);
      }
      char ch;
      bool got = ::read(go[0], &ch, 1) == 1;
      int verdict = got ? check() : 12;
      shm->reset();
      ::_exit(verdict);
    }
    ::close(to_parent[1]);
    ::close(go[0]);
    c.go = go[1];
    std::string json;
    char ch;
    while (::read(to_parent[0], &ch, 1) == 1 && ch != '\n') json += ch;
    ::close(to_parent[0]);
    auto d = SegmentDescriptor::FromJson(json);
    if (d.ok()) c.desc = *d;
    return c;
  }
  // Lets the child check and exit; returns its exit code.
  int Finish() {
    if (::write(go, "x", 1) != 1) return -1;
    ::close(go);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
  }
};

TEST(ShmTransportTest, MovesBytesIntoAndOutOfAForkedChild) {
  constexpr size_t kBytes = 6u << 20;  // > kInlineBytes: goes through the workers
  std::vector<char> remote(kBytes, 0), src(kBytes), back(kBytes);
  FillRandom(src.data(), kBytes, 42);
  ChildTarget child = ChildTarget::Start(remote.data(), kBytes, [&] {
    std::vector<char> expect(kBytes);
    FillRandom(expect.data(), kBytes, 42);
    return std::memcmp(remote.data(), expect.data(), kBytes) == 0 ? 0 : 1;
  });
  ASSERT_GT(child.pid, 0);
  ASSERT_EQ(child.desc.pid, child.pid);
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  ASSERT_TRUE(me->shm->CanReach(child.desc));
  std::vector<Slice> w, r;
  for (size_t off = 0; off < kBytes; off += 1 << 20) {
    w.push_back({TransferOp::kWrite, &src[off], Addr(&remote[off]), 1 << 20, nullptr});
    r.push_back({TransferOp::kRead, &back[off], Addr(&remote[off]), 1 << 20, nullptr});
  }
  for (const Status& s : RunSlices(*me->shm, child.desc, w)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_NE(std::memcmp(remote.data(), src.data(), kBytes), 0)
      << "our own copy must be untouched: the bytes went to the child";
  for (const Status& s : RunSlices(*me->shm, child.desc, r)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(back.data(), src.data(), kBytes));
  EXPECT_EQ(child.Finish(), 0) << "child saw wrong bytes";
}

ssize_t Refuse(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long);

TEST(ShmTransportTest, SharedMemoryOfAForkedChildIsCopiedWithoutTheKernel) {
  // The child's buffer comes from its transport (a sealed memfd); our copies must not use
  // cross-memory attach at all (it is refused here), yet every byte arrives.
  constexpr size_t kBytes = 6u << 20;
  static char* shared = nullptr;
  ChildTarget child = ChildTarget::Start(
      nullptr, 0,
      [&] {
        std::vector<char> expect(kBytes);
        FillRandom(expect.data(), kBytes, 7);
        return std::memcmp(shared, expect.data(), kBytes) == 0 ? 0 : 1;
      },
      "127.0.0.1:2", kBytes, &shared);
  ASSERT_GT(child.pid, 0);
  ASSERT_EQ(child.desc.buffers.size(), 1u);
  const uint64_t remote = child.desc.buffers[0].addr;
  auto me = MakeSelf(CmaCalls{&Refuse, &Refuse});
  ASSERT_TRUE(me);
  std::vector<char> src(kBytes), back(kBytes);
  FillRandom(src.data(), kBytes, 7);
  // Small slices (one group, copied inline), then 1 MiB ones (the workers).
  std::vector<Slice> w;
  for (size_t off = 0; off < (64u << 10); off += 4096) {
    w.push_back({TransferOp::kWrite, &src[off], remote + off, 4096, nullptr});
  }
  for (const Status& s : RunSlices(*me->shm, child.desc, w)) EXPECT_TRUE(s.ok()) << s.ToString();
  w.clear();
  std::vector<Slice> r;
  for (size_t off = 64u << 10; off < kBytes; off += 1 << 20) {
    const size_t n = std::min<size_t>(1 << 20, kBytes - off);
    w.push_back({TransferOp::kWrite, &src[off], remote + off, n, nullptr});
  }
  for (size_t off = 0; off < kBytes; off += 1 << 20) {
    r.push_back({TransferOp::kRead, &back[off], remote + off, 1 << 20, nullptr});
  }
  for (const Status& s : RunSlices(*me->shm, child.desc, w)) EXPECT_TRUE(s.ok()) << s.ToString();
  for (const Status& s : RunSlices(*me->shm, child.desc, r)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameBytes(back.data(), src.data(), kBytes));
  EXPECT_TRUE(me->shm->CanReach(child.desc)) << "nothing was refused: CMA was never tried";
  // Outside the shared buffer nothing is reachable, mapped or not.
  auto st = RunSlices(*me->shm, child.desc,
                      {{TransferOp::kWrite, src.data(), remote + kBytes - 8, 16, nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kPermissionDenied) << st[0].ToString();
  EXPECT_EQ(child.Finish(), 0) << "child saw wrong bytes";
}

TEST(ShmTransportTest, SharedMemoryIsFreedOnlyOnceUnregistered) {
  auto peer = MakeSelf(RealCmaCalls(), 2, /*register_everything=*/false);
  auto me = MakeSelf(CmaCalls{&Refuse, &Refuse});
  ASSERT_TRUE(peer && me);
  ASSERT_TRUE(peer->shm->allocates_memory());
  auto initiator_only = ShmTransport::Create(TransportOptions{}, nullptr);
  ASSERT_TRUE(initiator_only.ok());
  EXPECT_FALSE((*initiator_only)->allocates_memory());  // nobody could map its memory
  EXPECT_EQ((*initiator_only)->AllocateMemory(4096).status().code(), StatusCode::kUnavailable);
  auto p = peer->shm->AllocateMemory(1 << 20);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  char* mem = static_cast<char*>(*p);
  EXPECT_EQ(Addr(mem) % 4096, 0u);
  for (size_t i = 0; i < (1u << 20); i += 4096) ASSERT_EQ(mem[i], 0);
  peer->host.Register(mem, 1 << 20);
  std::vector<char> src(4096, 's');
  SegmentDescriptor d = peer->host.LocalDescriptor();
  auto st = RunSlices(*me->shm, d, {{TransferOp::kWrite, src.data(), Addr(mem), 4096, nullptr}});
  ASSERT_TRUE(st[0].ok()) << st[0].ToString();
  EXPECT_EQ(mem[4095], 's');
  EXPECT_EQ(peer->shm->FreeMemory(mem).code(), StatusCode::kFailedPrecondition);
  // Unregistered: the session says so before that returns, and the buffer is refused.
  peer->host.UnregisterAll();
  st = RunSlices(*me->shm, d, {{TransferOp::kWrite, src.data(), Addr(mem), 4096, nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kPermissionDenied) << st[0].ToString();
  EXPECT_TRUE(peer->shm->FreeMemory(mem).ok());
  EXPECT_EQ(peer->shm->FreeMemory(mem).code(), StatusCode::kNotFound);
  EXPECT_EQ(peer->shm->AllocateMemory(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShmTransportTest, DescriptorClaimingAnotherProcessIsNotBelieved) {
  // The defect: a process that answered with someone else's pid (and "shm") got its peer
  // to process_vm_writev into that unrelated process. Here the victim is a child that
  // serves no shm at all; the liar points at its own (genuine) session socket.
  std::vector<char> victim_mem(1 << 16, 'v');
  ChildTarget victim = ChildTarget::Start(nullptr, 0, [&] {
    for (char c : victim_mem) {
      if (c != 'v') return 1;
    }
    return 0;
  });
  ASSERT_GT(victim.pid, 0);
  auto liar = MakeSelf();
  auto initiator = MakeSelf();
  ASSERT_TRUE(liar && initiator);
  SegmentDescriptor claim = liar->peer;  // its real socket ...
  claim.pid = victim.pid;                // ... and someone else's pid
  claim.buffers = {{Addr(victim_mem.data()), victim_mem.size(), "cpu", true}};
  std::vector<char> evil(victim_mem.size(), 'X');
  auto st =
      RunSlices(*initiator->shm, claim,
                {{TransferOp::kWrite, evil.data(), Addr(victim_mem.data()), evil.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kUnimplemented) << st[0].ToString();  // the engine uses tcp
  EXPECT_NE(st[0].message().find("not the pid"), std::string::npos) << st[0].ToString();
  // A claim without a session socket at all is not reachable by shm.
  SegmentDescriptor bare = Peer(victim.pid, initiator->shm->host_id());
  EXPECT_FALSE(initiator->shm->CanReach(bare));
  bare.transport_info["shm"] = "/run/some-other-service.sock";
  EXPECT_FALSE(initiator->shm->CanReach(bare));
  EXPECT_EQ(victim.Finish(), 0) << "the victim's memory was written";
}

TEST(ShmTransportTest, OnlyBuffersThePeerRegisteredAreTouched) {
  std::vector<char> reg(1 << 16, 'r'), unreg(1 << 16, 'u');
  ChildTarget child = ChildTarget::Start(reg.data(), reg.size(), [&] {
    for (char c : unreg) {
      if (c != 'u') return 1;
    }
    for (char c : reg) {
      if (c != 'W') return 2;
    }
    return 0;
  });
  ASSERT_GT(child.pid, 0);
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  // The descriptor (from a peer or a metadata server) also lists memory the process never
  // registered; the process's own list wins.
  SegmentDescriptor claim = child.desc;
  claim.buffers.push_back({Addr(unreg.data()), unreg.size(), "cpu", true});
  std::vector<char> w(1 << 16, 'W');
  auto st = RunSlices(*me->shm, claim,
                      {{TransferOp::kWrite, w.data(), Addr(unreg.data()), w.size(), nullptr},
                       {TransferOp::kWrite, w.data(), Addr(reg.data()), w.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kPermissionDenied) << st[0].ToString();
  EXPECT_TRUE(st[1].ok()) << st[1].ToString();
  EXPECT_EQ(child.Finish(), 0);
}

TEST(ShmTransportTest, UnregisteredBufferIsRefusedAtOnce) {
  std::vector<char> target(1 << 16), src(1 << 16, 's');
  auto peer = MakeSelf(RealCmaCalls(), 2, /*register_everything=*/false);
  auto me = MakeSelf();
  ASSERT_TRUE(peer && me);
  peer->host.Register(target.data(), target.size());
  SegmentDescriptor d = peer->host.LocalDescriptor();
  auto st = RunSlices(*me->shm, d,
                      {{TransferOp::kWrite, src.data(), Addr(target.data()), src.size(), nullptr}});
  ASSERT_TRUE(st[0].ok()) << st[0].ToString();
  // The peer unregisters: its session pushes the change before UnregisterMemory returns,
  // so the next copy with the stale descriptor is refused.
  peer->host.UnregisterAll();
  st = RunSlices(*me->shm, d,
                 {{TransferOp::kWrite, src.data(), Addr(target.data()), src.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kPermissionDenied) << st[0].ToString();
}

TEST(ShmTransportTest, PeerWithAnotherSecretIsRefused) {
  TestHost a_host, b_host;
  TransportOptions a_opts, b_opts;
  a_opts.secret = "one";
  b_opts.secret = "two";
  auto a = ShmTransport::Create(a_opts, &a_host);
  auto b = ShmTransport::Create(b_opts, &b_host);
  ASSERT_TRUE(a.ok() && b.ok());
  a_host.set_transport(a->get());
  b_host.set_transport(b->get());
  std::vector<char> target(4096), src(4096, 'q');
  b_host.Register(target.data(), target.size());
  auto st = RunSlices(**a, b_host.LocalDescriptor(),
                      {{TransferOp::kWrite, src.data(), Addr(target.data()), 4096, nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kUnimplemented) << st[0].ToString();
  EXPECT_EQ(target[0], 0);
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

TEST(ShmTransportTest, UnmappedRegisteredAddressIsOutOfRange) {
  auto me = MakeSelf();  // registers all of its address space, mapped or not
  ASSERT_TRUE(me);
  long page = ::sysconf(_SC_PAGESIZE);
  void* hole = ::mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(hole, MAP_FAILED);
  std::vector<char> buf(64);
  auto st = RunSlices(*me->shm, me->peer,
                      {{TransferOp::kRead, buf.data(), Addr(hole), buf.size(), nullptr}});
  EXPECT_EQ(st[0].code(), StatusCode::kOutOfRange) << st[0].ToString();
  EXPECT_FALSE(me->shm->IsRefused(::getpid()));
  ::munmap(hole, page);
}

TEST(ShmTransportTest, PeerThatExitsIsUnavailable) {
  std::vector<char> remote(4096);
  ChildTarget child = ChildTarget::Start(remote.data(), remote.size(), [] { return 0; });
  ASSERT_GT(child.pid, 0);
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  std::vector<char> buf(4096, 'b');
  auto st = RunSlices(*me->shm, child.desc,
                      {{TransferOp::kWrite, buf.data(), Addr(remote.data()), buf.size(), nullptr}});
  ASSERT_TRUE(st[0].ok()) << st[0].ToString();
  ASSERT_EQ(child.Finish(), 0);  // exits and is reaped: its pid may now be reused
  st = RunSlices(*me->shm, child.desc,
                 {{TransferOp::kWrite, buf.data(), Addr(remote.data()), buf.size(), nullptr}});
  EXPECT_FALSE(st[0].ok());
  EXPECT_NE(st[0].code(), StatusCode::kOk);
  EXPECT_FALSE(me->shm->IsRefused(child.pid)) << "a dead peer is not a refusal";
}

// A kernel that refuses every attach (as with Yama ptrace_scope 3 or a seccomp filter).
ssize_t Refuse(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long) {
  errno = EPERM;
  return -1;
}

TEST(ShmTransportTest, RefusalIsUnimplementedAndRememberedUntilForgetPeer) {
  auto me = MakeSelf(CmaCalls{&Refuse, &Refuse});
  ASSERT_TRUE(me);
  ShmTransport* shm = me->shm.get();
  const SegmentDescriptor& peer = me->peer;
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

TEST(ShmTransportTest, CanReachNeedsSameHostShmAPidAndASessionSocket) {
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  ShmTransport* shm = me->shm.get();
  SegmentDescriptor p = me->peer;
  EXPECT_TRUE(shm->CanReach(p));
  SegmentDescriptor no_socket = p;
  no_socket.transport_info.clear();
  EXPECT_FALSE(shm->CanReach(no_socket));
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
  auto me = MakeSelf();
  ASSERT_TRUE(me);
  ShmTransport* shm = me->shm.get();
  std::vector<char> a(4096), b(4096);
  const SegmentDescriptor& self = me->peer;
  // Open the session first: with an expired deadline even the handshake could not run.
  ASSERT_TRUE(
      RunSlices(*shm, self, {{TransferOp::kWrite, a.data(), Addr(b.data()), 1, nullptr}})[0].ok());
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
  auto me = MakeSelf(CmaCalls{&::process_vm_readv, &SlowWrite}, 1);
  ASSERT_TRUE(me);
  auto& shm = me->shm;
  std::vector<char> a(1 << 20), b(1 << 20);
  constexpr int kSlices = 50;
  std::atomic<int> ok{0}, aborted{0}, other{0};
  std::vector<Slice> slices;
  for (int i = 0; i < kSlices; ++i) {
    slices.push_back({TransferOp::kWrite, a.data(), Addr(b.data()), a.size(), [&](const Status& s) {
                        (s.ok() ? ok : s.code() == StatusCode::kAborted ? aborted : other)++;
                      }});
  }
  shm->Submit(me->peer, slices, Deadline::In(std::chrono::seconds(30)));
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
