// The HELLO challenge-response: the shared secret never goes on the wire, a server that
// does not know it is detected before the client proves anything, and a client that does
// not know it (or replays another connection's proof) is refused before any other frame.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "ferry/transfer_engine.h"
#include "raw_socket.h"
#include "test_util.h"
#include "transfer/tcp/wire.h"

namespace ferry {
namespace {

using testing::RawSocket;
using transfer::tcp::DecodeFrameHeader;
using transfer::tcp::FrameHeader;
using transfer::tcp::FrameType;
using transfer::tcp::kFrameHeaderSize;
using transfer::tcp::kHelloNonceBytes;
using transfer::tcp::kHelloProofBytes;

constexpr char kSecret[] = "correct horse battery staple 42";

int Listen(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// Frames in a recorded byte stream (stops at a partial or undecodable header).
std::vector<FrameHeader> SplitFrames(const std::string& bytes) {
  std::vector<FrameHeader> out;
  size_t at = 0;
  while (at + kFrameHeaderSize <= bytes.size()) {
    auto h = DecodeFrameHeader(bytes.data() + at);
    if (!h.ok()) break;
    out.push_back(*h);
    at += kFrameHeaderSize + (h->type == FrameType::kRead ? 0 : h->length);
  }
  return out;
}

// A server that answers every HELLO with a made-up challenge and records what it gets.
class FakeServer {
 public:
  FakeServer() : listen_fd_(Listen(&port_)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  // What the client sent, once its first connection ended (waits up to 5 s for that).
  std::string received() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return served_ > 0; });
    return received_;
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      Serve(fd);
      ::close(fd);
    }
  }
  void Serve(int fd) {
    std::string got;
    bool answered = false;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
      if (!answered && got.size() >= kFrameHeaderSize + kHelloNonceBytes) {
        FrameHeader r;
        r.type = FrameType::kReply;
        std::string challenge = crypto::RandomBytes(kHelloNonceBytes + kHelloProofBytes);
        r.length = challenge.size();
        std::string reply = RawSocket::Frame(r, challenge);
        ASSERT_EQ(::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(reply.size()));
        answered = true;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    received_ += got;
    ++served_;
    cv_.notify_all();
  }

  uint16_t port_ = 0;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;  // served_ grew
  std::string received_;        // GUARDED_BY(mu_)
  int served_ = 0;              // GUARDED_BY(mu_); connections recorded
  std::thread thread_;
};

// Passes connections through to `target_port` and records both directions.
class SniffingProxy {
 public:
  explicit SniffingProxy(uint16_t target_port)
      : target_port_(target_port), listen_fd_(Listen(&port_)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SniffingProxy() {
    stop_ = true;
    thread_.join();
    for (auto& [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  std::string recorded() {
    std::lock_guard<std::mutex> lock(mu_);
    return recorded_;
  }

 private:
  void Run() {
    while (!stop_) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
      for (auto& [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) Accept();
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
        auto& [a, b] = pairs_[(i - 1) / 2];
        int from = fds[i].fd, to = from == a ? b : a;
        char buf[1 << 16];
        ssize_t n = ::recv(from, buf, sizeof(buf), 0);
        if (n <= 0) {
          ::shutdown(to, SHUT_WR);
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          recorded_.append(buf, static_cast<size_t>(n));
        }
        ::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
      }
    }
  }
  void Accept() {
    int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(target_port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(client);
      ::close(server);
      return;
    }
    pairs_.emplace_back(client, server);
  }

  const uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::vector<std::pair<int, int>> pairs_;  // proxy thread only, until joined
  std::mutex mu_;
  std::string recorded_;  // GUARDED_BY(mu_); both directions
  std::thread thread_;
};

bool WaitFor(const std::function<bool()>& done) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(HelloTest, HelloNeverSendsTheSecret) {
  // A fake server learns nothing and is detected.
  {
    FakeServer fake;
    auto client = testing::MakeEngine("tcp", kSecret);
    ASSERT_TRUE(client);
    auto seg = client->OpenSegment("127.0.0.1:" + std::to_string(fake.port()));
    ASSERT_EQ(seg.status().code(), StatusCode::kPermissionDenied) << seg.status().ToString();
    EXPECT_NE(seg.status().message().find("FERRY_KV_SECRET"), std::string::npos)
        << seg.status().message();
    client.reset();
    std::string sent = fake.received();
    ASSERT_GE(sent.size(), kFrameHeaderSize + kHelloNonceBytes);
    EXPECT_EQ(sent.find(kSecret), std::string::npos) << "the secret went on the wire";
    // HELLO (a nonce), then a proof-less HELLO_PROOF saying it gives up: no proof at all.
    std::vector<FrameHeader> frames = SplitFrames(sent);
    ASSERT_GE(frames.size(), 1u);
    EXPECT_EQ(frames[0].type, FrameType::kHello);
    EXPECT_EQ(frames[0].length, kHelloNonceBytes);
    for (const FrameHeader& f : frames) {
      if (f.type != FrameType::kHelloProof) continue;
      EXPECT_EQ(f.length, 0u) << "the client proved itself to an unverified server";
      EXPECT_EQ(f.status, static_cast<int32_t>(StatusCode::kPermissionDenied));
    }
  }
  // Whoever watches a real exchange does not see the secret either.
  {
    auto target = testing::MakeEngine("tcp", kSecret);
    auto client = testing::MakeEngine("tcp", kSecret);
    ASSERT_TRUE(target && client);
    std::vector<char> remote(4096), local(4096, 'q');
    ASSERT_TRUE(target->RegisterMemory({remote.data(), remote.size()}).ok());
    SniffingProxy proxy(target->rpc_port());
    auto seg = client->OpenSegment("127.0.0.1:" + std::to_string(proxy.port()));
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    std::string seen = proxy.recorded();
    EXPECT_GT(seen.size(), 2 * (kFrameHeaderSize + kHelloNonceBytes));
    EXPECT_EQ(seen.find(kSecret), std::string::npos) << "the secret went on the wire";
    EXPECT_NE(seen.find(target->local_name()), std::string::npos) << "no descriptor seen";
  }
}

TEST(HelloTest, WrongSecretIsRefusedBothWays) {
  struct Case {
    const char* target;
    const char* client;
  };
  for (Case c : {Case{"alpha", "beta"}, Case{"alpha", ""}, Case{"", "alpha"}}) {
    SCOPED_TRACE(std::string("target '") + c.target + "', client '" + c.client + "'");
    auto target = testing::MakeEngine("tcp", c.target);
    auto client = testing::MakeEngine("tcp", c.client);
    ASSERT_TRUE(target && client);
    const uint64_t before = target->counters().inbound_rejected;
    auto seg = client->OpenSegment(target->local_name());
    ASSERT_EQ(seg.status().code(), StatusCode::kPermissionDenied) << seg.status().ToString();
    EXPECT_NE(seg.status().message().find("set the same secret (FERRY_KV_SECRET)"),
              std::string::npos)
        << seg.status().message();
    EXPECT_TRUE(WaitFor([&] { return target->counters().inbound_rejected > before; }))
        << "the target did not count the refusal";
  }

  // A client that ignores the challenge and guesses a proof is refused, and nothing it
  // pipelines after the proof reaches memory.
  auto target = testing::MakeEngine("tcp", kSecret);
  ASSERT_TRUE(target);
  std::vector<char> memory(4096, 0);
  ASSERT_TRUE(target->RegisterMemory({memory.data(), memory.size()}).ok());
  FrameHeader write;
  write.type = FrameType::kWrite;
  write.request_id = 9;
  write.remote_addr = reinterpret_cast<uintptr_t>(memory.data());
  write.length = 16;
  const std::string write_frame = RawSocket::Frame(write, std::string(16, 'X'));
  {
    RawSocket raw(target->rpc_port());
    ASSERT_EQ(raw.StartHello().size(), kHelloNonceBytes + kHelloProofBytes);
    FrameHeader proof;
    proof.type = FrameType::kHelloProof;
    proof.length = kHelloProofBytes;
    raw.Send(RawSocket::Frame(proof, crypto::RandomBytes(kHelloProofBytes)) + write_frame);
    FrameHeader r;
    std::string text;
    ASSERT_TRUE(raw.ReadReply(&r, &text));
    EXPECT_EQ(r.status, static_cast<int32_t>(StatusCode::kPermissionDenied));
    EXPECT_NE(text.find("FERRY_KV_SECRET"), std::string::npos) << text;
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  // Skipping the proof altogether.
  {
    RawSocket raw(target->rpc_port());
    ASSERT_FALSE(raw.StartHello().empty());
    raw.Send(write_frame);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  // Replaying a proof seen on another connection: the server's nonce differs each time.
  {
    RawSocket first(target->rpc_port());
    first.Hello(kSecret);
    std::string nonce = first.client_nonce();
    std::string challenge1 = RawSocket(target->rpc_port()).StartHello(nonce);
    RawSocket second(target->rpc_port());
    std::string challenge2 = second.StartHello(nonce);
    ASSERT_EQ(challenge2.size(), kHelloNonceBytes + kHelloProofBytes);
    EXPECT_NE(challenge1.substr(0, kHelloNonceBytes), challenge2.substr(0, kHelloNonceBytes));
    FrameHeader proof;
    proof.type = FrameType::kHelloProof;
    std::string replayed =
        transfer::tcp::HelloClientProof(kSecret, challenge1.substr(0, kHelloNonceBytes), nonce);
    proof.length = replayed.size();
    second.Send(RawSocket::Frame(proof, replayed) + write_frame);
    FrameHeader r;
    std::string text;
    ASSERT_TRUE(second.ReadReply(&r, &text));
    EXPECT_EQ(r.status, static_cast<int32_t>(StatusCode::kPermissionDenied)) << text;
    EXPECT_TRUE(second.ClosedByPeer());
  }
  EXPECT_EQ(memory, std::vector<char>(4096, 0)) << "a refused client wrote into memory";
  // The right secret still works.
  auto right = testing::MakeEngine("tcp", kSecret);
  auto seg = right->OpenSegment(target->local_name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  std::vector<char> local(16, 'R');
  TransferRequest w{TransferOp::kWrite, local.data(), *seg,
                    reinterpret_cast<uintptr_t>(memory.data()), local.size()};
  ASSERT_TRUE(right->TransferSync({&w, 1}).ok());
  EXPECT_EQ(std::string(memory.data(), 16), std::string(16, 'R'));
}

}  // namespace
}  // namespace ferry
