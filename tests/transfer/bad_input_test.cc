// Bad input: every malformed or out-of-bounds request is refused with a clear error, and
// the target keeps serving a well-behaved peer afterwards. TransportBadInputTest runs over
// every registered transport; BadInputTest sends raw frames to the RPC port (the control
// plane's server, the same for every transport).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/transfer_engine.h"
#include "raw_socket.h"
#include "test_util.h"
#include "transfer/tcp/wire.h"

namespace ferry {
namespace {

using transfer::tcp::EncodeFrameHeader;
using transfer::tcp::FrameHeader;
using transfer::tcp::FrameType;
using transfer::tcp::kFrameHeaderSize;

using testing::RawSocket;

class BadInputTest : public ::testing::Test {
 protected:
  // The initiator's transport (the target runs the data transport under it).
  virtual std::string Transport() const { return "tcp"; }

  void SetUp() override {
    target_ = testing::MakeEngine(testing::BaseTransport(Transport()));
    peer_ = testing::MakeEngine(Transport());
    ASSERT_TRUE(target_ && peer_);
    remote_.resize(1 << 20);
    local_.resize(1 << 20);
    ASSERT_TRUE(target_->RegisterMemory({remote_.data(), remote_.size()}).ok());
    auto seg = peer_->OpenSegment(target_->local_name());
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    seg_ = *seg;
  }
  uint64_t RemoteAddr(size_t off) { return reinterpret_cast<uintptr_t>(remote_.data()) + off; }

  // A well-behaved peer can still write and read.
  void ExpectTargetStillServes() {
    testing::FillRandom(local_.data(), 4096, 99);
    TransferRequest w{TransferOp::kWrite, local_.data(), seg_, RemoteAddr(100), 4096};
    Status s = peer_->TransferSync({&w, 1}, std::chrono::seconds(5));
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(testing::SameBytes(&remote_[100], local_.data(), 4096));
  }

  // Declared first, destroyed last: the engines stop before the memory they serve goes.
  std::vector<char> remote_, local_;
  std::unique_ptr<TransferEngine> target_, peer_;
  SegmentId seg_ = 0;
};

class TransportBadInputTest : public BadInputTest,
                              public ::testing::WithParamInterface<std::string> {
 protected:
  std::string Transport() const override { return GetParam(); }
};

TEST_P(TransportBadInputTest, OutOfRangeRemoteAddressIsRefusedAtSubmit) {
  TransferRequest reqs[] = {
      {TransferOp::kWrite, local_.data(), seg_, RemoteAddr(remote_.size() - 10), 11},
      {TransferOp::kRead, local_.data(), seg_, RemoteAddr(0) - 1, 2},
      {TransferOp::kWrite, local_.data(), seg_, 16, 1},
      {TransferOp::kWrite, local_.data(), seg_, ~0ull - 3, 100},
  };
  for (const auto& r : reqs) {
    Status s = peer_->TransferSync({&r, 1});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("outside the registered"), std::string::npos) << s.message();
  }
  ExpectTargetStillServes();
}

TEST_F(BadInputTest, OverlappingRegistrationIsRefused) {
  std::vector<char> buf(8192);
  ASSERT_TRUE(target_->RegisterMemory({buf.data(), 4096}).ok());
  Status s = target_->RegisterMemory({buf.data() + 100, 10});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("overlaps"), std::string::npos) << s.message();
  MemoryRegion two[] = {{buf.data() + 4096, 2048}, {buf.data() + 5000, 100}};
  EXPECT_EQ(target_->RegisterMemory(two).code(), StatusCode::kInvalidArgument);
  // All-or-nothing: the first of the two was not registered either.
  EXPECT_TRUE(target_->RegisterMemory({buf.data() + 4096, 2048}).ok());
  EXPECT_EQ(target_->RegisterMemory({nullptr, 10}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(target_->UnregisterMemory(buf.data() + 1).code(), StatusCode::kNotFound);
  ASSERT_TRUE(target_->UnregisterMemory(buf.data()).ok());
  ExpectTargetStillServes();
}

TEST_P(TransportBadInputTest, UnknownAndUnregisteredSegmentsAreRefused) {
  // Nothing listens there (port 1 is privileged and unused).
  auto r = peer_->OpenSegment("127.0.0.1:1");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_EQ(peer_->OpenSegment("not a name").status().code(), StatusCode::kInvalidArgument);
  TransferRequest w{TransferOp::kWrite, local_.data(), 424242, 0, 1};
  Status s = peer_->TransferSync({&w, 1});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown segment"), std::string::npos) << s.message();
  // A buffer unregistered after the descriptor was cached: the stale cache lets the
  // request go out, and the transport refuses it (tcp: the target's server; shm: the
  // registrations the target pushed over its session; ucx: the unmapped rkey). Nothing is
  // written into memory that is no longer registered.
  if (testing::BaseTransport(Transport()) == "ucx") {
    // UCX 1.13's tcp and shared-memory transports (all this machine has) emulate RMA in
    // software and check no rkey: a stale descriptor still writes into unregistered
    // memory. Only RDMA NICs enforce it, which is why ucx refuses to run over software
    // transports when the deployment has a secret (UcxSecretTest; docs/ucx.md).
    GTEST_SKIP() << "ucx over UCX's software transports does not protect unregistered memory";
  }
  std::memset(remote_.data(), 0x5a, 64);
  std::memset(local_.data(), 0x11, 64);
  ASSERT_TRUE(target_->UnregisterMemory(remote_.data()).ok());
  TransferRequest gone{TransferOp::kWrite, local_.data(), seg_, RemoteAddr(0), 64};
  Status stale = peer_->TransferSync({&gone, 1});
  EXPECT_FALSE(stale.ok());
  if (testing::BaseTransport(Transport()) == "tcp") {
    EXPECT_EQ(stale.code(), StatusCode::kOutOfRange) << stale.ToString();
  }
  EXPECT_EQ(std::string(remote_.data(), 64), std::string(64, '\x5a'));
  // After a refresh the engine refuses it before sending anything.
  ASSERT_TRUE(peer_->GetSegmentDescriptor(seg_, /*refresh=*/true).ok());
  EXPECT_EQ(peer_->TransferSync({&gone, 1}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(target_->RegisterMemory({remote_.data(), remote_.size()}).ok());
  ExpectTargetStillServes();
}

TEST_F(BadInputTest, RawWriteOutsideRegisteredMemoryIsRejectedAndConnectionLives) {
  RawSocket raw(target_->rpc_port());
  ASSERT_TRUE(raw.connected());
  raw.Hello();
  std::vector<char> before(remote_.begin(), remote_.end());
  FrameHeader h;
  h.type = FrameType::kWrite;
  h.request_id = 5;
  h.remote_addr = RemoteAddr(remote_.size() - 8);  // crosses the end of the buffer
  h.length = 64;
  raw.SendFrame(h, std::string(64, 'x'));
  FrameHeader r;
  std::string text;
  ASSERT_TRUE(raw.ReadReply(&r, &text));
  EXPECT_EQ(r.request_id, 5u);
  EXPECT_EQ(r.status, static_cast<int32_t>(StatusCode::kOutOfRange));
  EXPECT_NE(text.find("not inside any registered buffer"), std::string::npos) << text;
  EXPECT_TRUE(before == remote_);  // nothing written
  EXPECT_GE(target_->counters().inbound_rejected, 1u);
  // Same connection still answers.
  h = FrameHeader{};
  h.type = FrameType::kRead;
  h.request_id = 6;
  h.remote_addr = 4096;  // unmapped low address
  h.length = 8;
  raw.SendFrame(h);
  ASSERT_TRUE(raw.ReadReply(&r, &text));
  EXPECT_EQ(r.status, static_cast<int32_t>(StatusCode::kOutOfRange));
  h = FrameHeader{};
  h.type = FrameType::kGetDescriptor;
  h.request_id = 7;
  raw.SendFrame(h);
  ASSERT_TRUE(raw.ReadReply(&r, &text));
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(text.find(target_->local_name()), std::string::npos);
  ExpectTargetStillServes();
}

TEST_F(BadInputTest, GarbageBytesCloseOnlyThatConnection) {
  RawSocket raw(target_->rpc_port());
  ASSERT_TRUE(raw.connected());
  raw.Send(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n") + std::string(64, '\xff'));
  EXPECT_TRUE(raw.ClosedByPeer());
  ExpectTargetStillServes();
}

TEST_F(BadInputTest, FramesBeforeHelloAndUnknownTypesAreRefused) {
  {
    RawSocket raw(target_->rpc_port());
    FrameHeader h;
    h.type = FrameType::kWrite;
    h.remote_addr = RemoteAddr(0);
    h.length = 4;
    raw.SendFrame(h, "abcd");  // no HELLO first
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  {
    RawSocket raw(target_->rpc_port());
    raw.Hello();
    char buf[kFrameHeaderSize];
    FrameHeader h;
    EncodeFrameHeader(h, buf);
    buf[5] = 99;  // unknown type
    raw.Send(std::string(buf, sizeof(buf)));
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  ExpectTargetStillServes();
}

// The peer stops sending in the middle of a frame and half-closes its side: the target
// must close the connection (not wait for the rest, not answer with a reply as if the frame
// were whole), and keep serving others. A peer that stalls mid-frame without hanging up is
// closed by tcp_frame_timeout_s (server_limits_test).
TEST_F(BadInputTest, TruncatedFramesCloseTheConnection) {
  {
    RawSocket raw(target_->rpc_port());
    raw.Hello();
    char buf[kFrameHeaderSize];
    FrameHeader h;
    h.type = FrameType::kWrite;
    h.remote_addr = RemoteAddr(0);
    h.length = 1000;
    EncodeFrameHeader(h, buf);
    raw.Send(std::string(buf, 17));  // half a header, then hang up
    ASSERT_EQ(::shutdown(raw.fd(), SHUT_WR), 0);
    EXPECT_TRUE(raw.ClosedByPeer()) << "half a header: the target kept the connection open";
  }
  {
    RawSocket raw(target_->rpc_port());
    raw.Hello();
    FrameHeader h;
    h.type = FrameType::kWrite;
    h.request_id = 9;
    h.remote_addr = RemoteAddr(0);
    h.length = 1000;
    raw.SendFrame(h, std::string(10, 'y'));  // payload cut short
    ASSERT_EQ(::shutdown(raw.fd(), SHUT_WR), 0);
    // No reply for the cut frame (ReadReply fails at EOF), and the connection closes.
    FrameHeader r;
    std::string text;
    EXPECT_FALSE(raw.ReadReply(&r, &text)) << "a reply to a truncated WRITE: " << text;
    EXPECT_TRUE(raw.ClosedByPeer()) << "cut payload: the target kept the connection open";
  }
  ExpectTargetStillServes();
}

TEST_F(BadInputTest, OversizedLengthsCloseTheConnection) {
  {
    RawSocket raw(target_->rpc_port());
    raw.Hello();
    FrameHeader h;
    h.type = FrameType::kWrite;
    h.remote_addr = RemoteAddr(0);
    h.length = 1ull << 40;
    raw.SendFrame(h);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  {
    RawSocket raw(target_->rpc_port());
    FrameHeader h;
    h.type = FrameType::kHello;
    h.length = 1ull << 20;  // HELLO carries one 32-byte nonce
    raw.SendFrame(h);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  {
    RawSocket raw(target_->rpc_port());
    raw.Hello();
    FrameHeader h;
    h.type = FrameType::kNotify;
    h.length = 1ull << 33;
    raw.SendFrame(h);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  ExpectTargetStillServes();
}

INSTANTIATE_TEST_SUITE_P(AllTransports, TransportBadInputTest,
                         ::testing::ValuesIn(testing::RegisteredTransports()),
                         testing::TransportParamName);

TEST(UcxSecretTest, WithASecretUcxRunsOnlyOverRdmaNics) {
  auto names = transfer::TransportRegistry::Names();
  if (std::find(names.begin(), names.end(), "ucx") == names.end()) {
    GTEST_SKIP() << "built without ucx";
  }
  TransferEngineOptions o = testing::TestEngineOptions("ucx", "s3cret");
  auto refused = TransferEngine::Create(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("RDMA NICs"), std::string::npos)
      << refused.status().ToString();
  // "rdma" keeps working: ucx is optional there and left out on a host without RDMA NICs.
  o.transport = "rdma";
  auto rdma = TransferEngine::Create(o);
  EXPECT_TRUE(rdma.ok()) << rdma.status().ToString();
}

TEST(SecretTest, WrongSecretIsRefusedAndRightOneWorks) {
  auto target = testing::MakeEngine("tcp", "s3cret");
  auto wrong = testing::MakeEngine("tcp", "guess");
  auto none = testing::MakeEngine("tcp", "");
  auto right = testing::MakeEngine("tcp", "s3cret");
  ASSERT_TRUE(target && wrong && none && right);
  std::vector<char> remote(4096), local(4096, 'z');
  ASSERT_TRUE(target->RegisterMemory({remote.data(), remote.size()}).ok());
  for (auto* e : {wrong.get(), none.get()}) {
    auto seg = e->OpenSegment(target->local_name());
    ASSERT_EQ(seg.status().code(), StatusCode::kPermissionDenied) << seg.status().ToString();
    EXPECT_NE(seg.status().message().find("secret"), std::string::npos);
  }
  EXPECT_GE(target->counters().inbound_rejected, 2u);
  auto seg = right->OpenSegment(target->local_name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  TransferRequest w{TransferOp::kWrite, local.data(), *seg,
                    reinterpret_cast<uintptr_t>(remote.data()), local.size()};
  ASSERT_TRUE(right->TransferSync({&w, 1}).ok());
  EXPECT_EQ(remote, local);
}

}  // namespace
}  // namespace ferry
