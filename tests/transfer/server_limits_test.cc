// The tcp server's bounds: connection caps, HELLO / frame / idle deadlines, running out of
// file descriptors, and a thread count that does not grow with connections. Each test
// plays the hostile peer with raw sockets and checks that a real engine peer is still
// served.
#include <dirent.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/transfer_engine.h"
#include "peer_process.h"
#include "raw_socket.h"
#include "test_util.h"
#include "transfer/tcp/wire.h"

namespace ferry {
namespace {

using Clock = std::chrono::steady_clock;
using testing::PeerProcess;
using testing::RawSocket;
using transfer::tcp::FrameHeader;
using transfer::tcp::FrameType;

// Polls `done` every 20 ms until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int CountClosed(const std::vector<std::unique_ptr<RawSocket>>& socks) {
  int n = 0;
  for (const auto& s : socks) n += s->ClosedNow() ? 1 : 0;
  return n;
}

// Writes 64 KiB (pipelined path) and 4 KiB (direct path) to `remote` and reads them back.
Status WriteAndReadBack(TransferEngine& engine, SegmentId seg, uint64_t remote) {
  std::vector<char> out(64 << 10), back(64 << 10);
  testing::FillRandom(out.data(), out.size(), remote);
  for (size_t n : {out.size(), size_t{4096}}) {
    TransferRequest w{TransferOp::kWrite, out.data(), seg, remote, n};
    FERRY_RETURN_IF_ERROR(engine.TransferSync({&w, 1}, std::chrono::seconds(5)));
    TransferRequest r{TransferOp::kRead, back.data(), seg, remote, n};
    FERRY_RETURN_IF_ERROR(engine.TransferSync({&r, 1}, std::chrono::seconds(5)));
    if (std::memcmp(out.data(), back.data(), n) != 0) return InternalError("bytes differ");
  }
  return OkStatus();
}

int ThreadCount() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' ? 1 : 0;
  ::closedir(d);
  return n;
}

class ServerLimitsTest : public ::testing::Test {
 protected:
  void StartTarget(const std::string& params) {
    target_ = testing::MakeEngineWithParams(params);
    ASSERT_TRUE(target_);
    memory_.assign(32u << 20, 0);
    ASSERT_TRUE(target_->RegisterMemory({memory_.data(), memory_.size()}).ok());
  }
  uint64_t Addr(size_t off = 0) { return reinterpret_cast<uintptr_t>(memory_.data()) + off; }
  // A fresh engine peer opens the target and moves bytes both ways.
  void ExpectTargetServesNewPeer() {
    auto peer = testing::MakeEngine();
    ASSERT_TRUE(peer);
    auto seg = peer->OpenSegment(target_->local_name());
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    Status s = WriteAndReadBack(*peer, *seg, Addr(4096));
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  uint16_t port() const { return target_->rpc_port(); }

  std::vector<char> memory_;  // declared first: freed after the engine serving it stopped
  std::unique_ptr<TransferEngine> target_;
};

TEST_F(ServerLimitsTest, ConnectionFloodIsCappedAndLegitPeerStillServed) {
  StartTarget("tcp_max_connections=24,tcp_max_connections_per_peer=16,tcp_hello_timeout_s=3");
  // An engine peer already connected, from 127.0.0.1.
  auto peer = testing::MakeEngine();
  ASSERT_TRUE(peer);
  auto seg = peer->OpenSegment(target_->local_name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  ASSERT_TRUE(WriteAndReadBack(*peer, *seg, Addr()).ok());
  const uint64_t rejected_before = target_->counters().inbound_rejected;

  // 100 connections from one address that never say HELLO: 16 are kept, 84 closed at once.
  std::vector<std::unique_ptr<RawSocket>> flood;
  for (int i = 0; i < 100; ++i) flood.push_back(std::make_unique<RawSocket>(port(), "127.0.0.2"));
  for (auto& s : flood) ASSERT_TRUE(s->connected());
  EXPECT_TRUE(WaitFor([&] { return CountClosed(flood) >= 84; }, std::chrono::seconds(2)))
      << CountClosed(flood) << " of 100 closed";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(CountClosed(flood), 84) << "per-peer cap of 16 not applied";
  EXPECT_GE(target_->counters().inbound_rejected - rejected_before, 84u);

  // The server still answers the connected peer promptly.
  auto t0 = Clock::now();
  Status s = WriteAndReadBack(*peer, *seg, Addr());
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));

  // From a second address the total cap (24, of which the peer holds some) binds first.
  std::vector<std::unique_ptr<RawSocket>> more;
  for (int i = 0; i < 16; ++i) more.push_back(std::make_unique<RawSocket>(port(), "127.0.0.3"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int more_open = 16 - CountClosed(more);
  EXPECT_GT(more_open, 0);
  EXPECT_LE(16 + more_open, 24 - 1) << "total cap exceeded (the peer holds at least one)";
  EXPECT_TRUE(WriteAndReadBack(*peer, *seg, Addr()).ok());

  // None of them said HELLO: after tcp_hello_timeout_s all are gone and newcomers get in.
  EXPECT_TRUE(WaitFor([&] { return CountClosed(flood) == 100 && CountClosed(more) == 16; },
                      std::chrono::seconds(6)));
  ExpectTargetServesNewPeer();
}

TEST_F(ServerLimitsTest, IdleConnectionsAreClosed) {
  StartTarget("tcp_idle_timeout_s=1");
  RawSocket quiet(port());
  RawSocket busy(port());
  quiet.Hello();
  busy.Hello();
  auto t0 = Clock::now();
  // `busy` sends a frame after 0.6 s, which restarts its idle clock.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  FrameHeader h;
  h.type = FrameType::kGetDescriptor;
  h.request_id = 1;
  busy.SendFrame(h);
  FrameHeader r;
  std::string text;
  ASSERT_TRUE(busy.ReadReply(&r, &text));
  EXPECT_TRUE(WaitFor([&] { return quiet.ClosedNow(); }, std::chrono::seconds(3)));
  auto quiet_closed = Clock::now() - t0;
  EXPECT_GE(quiet_closed, std::chrono::milliseconds(900));
  EXPECT_LT(quiet_closed, std::chrono::milliseconds(1600));
  EXPECT_FALSE(busy.ClosedNow()) << "closed although a frame arrived 0.4 s ago";
  EXPECT_TRUE(WaitFor([&] { return busy.ClosedNow(); }, std::chrono::seconds(3)));
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(1500));

  // An engine peer whose pooled connections were closed while idle just reconnects.
  auto peer = testing::MakeEngine();
  auto seg = peer->OpenSegment(target_->local_name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  ASSERT_TRUE(WriteAndReadBack(*peer, *seg, Addr()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  Status s = WriteAndReadBack(*peer, *seg, Addr());
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ServerLimitsTest, PreHelloConnectionsAreClosedAfterDeadline) {
  StartTarget("tcp_hello_timeout_s=1");
  const uint64_t rejected_before = target_->counters().inbound_rejected;
  auto t0 = Clock::now();
  RawSocket silent(port());  // says nothing
  RawSocket half(port());    // HELLO, then never the proof
  ASSERT_EQ(half.StartHello().size(),
            transfer::tcp::kHelloNonceBytes + transfer::tcp::kHelloProofBytes);
  RawSocket trickle(port());  // the HELLO frame one byte every 100 ms
  FrameHeader h;
  h.type = FrameType::kHello;
  h.length = transfer::tcp::kHelloNonceBytes;
  std::string hello = RawSocket::Frame(h, std::string(h.length, 'n'));
  std::thread trickler([&] {
    for (char c : hello) {
      if (!trickle.TrySend(std::string(1, c))) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  for (RawSocket* s : {&silent, &half, &trickle}) {
    EXPECT_TRUE(WaitFor([&] { return s->ClosedNow(); }, std::chrono::seconds(3)));
    auto took = Clock::now() - t0;
    EXPECT_GE(took, std::chrono::milliseconds(900));
    EXPECT_LT(took, std::chrono::milliseconds(2000));
  }
  trickler.join();
  EXPECT_GE(target_->counters().inbound_rejected - rejected_before, 3u);
  ExpectTargetServesNewPeer();
}

TEST_F(ServerLimitsTest, SlowLorisFrameIsCutAtFrameTimeout) {
  StartTarget("tcp_frame_timeout_s=1");
  // A WRITE whose payload trickles in one byte every 50 ms.
  RawSocket loris(port());
  loris.Hello();
  FrameHeader h;
  h.type = FrameType::kWrite;
  h.request_id = 1;
  h.remote_addr = Addr();
  h.length = 64 << 10;
  loris.SendFrame(h);
  auto t0 = Clock::now();
  std::thread trickler([&] {
    for (int i = 0; i < 100 && loris.TrySend("x"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  // A header that trickles in.
  RawSocket slow_header(port());
  slow_header.Hello();
  std::string header = RawSocket::Frame(h);
  std::thread header_trickler([&] {
    for (char c : header) {
      if (!slow_header.TrySend(std::string(1, c))) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  // A READ reply the peer never takes (32 MiB cannot fit in the socket buffers).
  RawSocket no_reader(port());
  no_reader.Hello();
  FrameHeader rd;
  rd.type = FrameType::kRead;
  rd.request_id = 2;
  rd.remote_addr = Addr();
  rd.length = memory_.size();
  no_reader.SendFrame(rd);

  for (RawSocket* s : {&loris, &slow_header}) {
    EXPECT_TRUE(WaitFor([&] { return s->ClosedNow(); }, std::chrono::seconds(4)));
    auto took = Clock::now() - t0;
    EXPECT_GE(took, std::chrono::milliseconds(900));
    EXPECT_LT(took, std::chrono::milliseconds(2000));
  }
  trickler.join();
  header_trickler.join();
  // The reader starts reading only after the server gave up: it gets part of the data.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  size_t got = 0;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::recv(no_reader.fd(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  EXPECT_LT(got, memory_.size()) << "the stalled READ reply was not cut";
  ExpectTargetServesNewPeer();
}

TEST_F(ServerLimitsTest, ServerThreadCountIsFixed) {
  StartTarget("tcp_server_threads=2");
  ExpectTargetServesNewPeer();
  const int before = ThreadCount();
  ASSERT_GT(before, 0);
  std::vector<std::unique_ptr<RawSocket>> conns;
  for (int i = 0; i < 200; ++i) {
    conns.push_back(std::make_unique<RawSocket>(port()));
    conns.back()->Hello();
  }
  EXPECT_EQ(ThreadCount(), before) << "threads grew with 200 connections";
  // Every connection is served (from the same few threads).
  FrameHeader h;
  h.type = FrameType::kGetDescriptor;
  for (auto& c : conns) {
    c->SendFrame(h);
    FrameHeader r;
    std::string text;
    ASSERT_TRUE(c->ReadReply(&r, &text));
    EXPECT_EQ(r.status, 0);
  }
  EXPECT_EQ(ThreadCount(), before);
  for (const char* bad : {"tcp_server_threads=0", "tcp_server_threads=17"}) {
    TransferEngineOptions o = testing::TestEngineOptions();
    o.transport_params = bad;
    auto e = TransferEngine::Create(o);
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(e.status().message().find("1..16"), std::string::npos) << e.status().message();
  }
}

TEST(ServerFdLimitTest, TooManyOpenFilesDoesNotSpinOrAbort) {
  PeerProcess target("127.0.0.1:0", 1 << 20, {"nofile=64"});
  ASSERT_GT(target.addr(), 0u);
  auto cpu0 = target.CpuTime();
  // Far more connections than the target has descriptors for, held for 3 s.
  {
    std::vector<std::unique_ptr<RawSocket>> flood;
    uint16_t port = static_cast<uint16_t>(std::stoi(target.name().substr(10)));
    for (int i = 0; i < 300; ++i) {
      flood.push_back(std::make_unique<RawSocket>(port, "127.0.0.2", /*blocking_connect=*/false));
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    auto cpu = target.CpuTime() - cpu0;
    EXPECT_LT(cpu, std::chrono::milliseconds(600)) << "the target spins while out of fds";
    EXPECT_TRUE(target.Alive()) << "the target died while out of fds";
  }
  // After the flood it serves again.
  auto engine = testing::MakeEngine();
  ASSERT_TRUE(engine);
  Result<SegmentId> seg = UnavailableError("not tried");
  WaitFor(
      [&] {
        seg = engine->OpenSegment(target.name());
        return seg.ok();
      },
      std::chrono::seconds(10));
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  Status s = WriteAndReadBack(*engine, *seg, target.addr() + 4096);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(target.Alive());
  EXPECT_GT(target.Counter("inbound_rejected"), 0u);
}

}  // namespace
}  // namespace ferry
