// RawSocket: a hand-driven client connection to an engine's RPC port, for tests that send
// exactly the bytes they want (malformed frames, floods, slow peers, a wrong HELLO proof).
//
//   RawSocket raw(target->rpc_port());
//   ASSERT_TRUE(raw.connected());
//   raw.Hello();                           // the HELLO challenge-response, no secret
//   raw.SendFrame(header, payload);
//   EXPECT_TRUE(raw.ClosedByPeer());
//
// Blocking, with a 5 s receive timeout. Thread-compatible.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/crypto.h"
#include "transfer/tcp/wire.h"

namespace ferry::testing {

class RawSocket {
 public:
  // Connects to 127.0.0.1:port from `source_ip` (any 127.x.y.z works on Linux loopback,
  // which lets a test act as several peers). `blocking_connect` false: the connect is
  // started and not waited for (floods).
  explicit RawSocket(uint16_t port, const char* source_ip = nullptr, bool blocking_connect = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source_ip != nullptr) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source_ip, &src.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!blocking_connect) {
      ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
      int r = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      connected_ = r == 0 || errno == EINPROGRESS;
      return;
    }
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  int fd() const { return fd_; }
  bool connected() const { return connected_; }

  // Sends all of `bytes`; false if the connection failed (e.g. the server closed it).
  bool TrySend(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  void Send(const std::string& bytes) { ASSERT_TRUE(TrySend(bytes)); }
  static std::string Frame(const transfer::tcp::FrameHeader& h, const std::string& payload = "") {
    char buf[transfer::tcp::kFrameHeaderSize];
    transfer::tcp::EncodeFrameHeader(h, buf);
    return std::string(buf, sizeof(buf)) + payload;
  }
  void SendFrame(const transfer::tcp::FrameHeader& h, const std::string& payload = "") {
    Send(Frame(h, payload));
  }
  // Reads one reply header (+ its payload). False on EOF / timeout / a bad header.
  bool ReadReply(transfer::tcp::FrameHeader* out, std::string* payload) {
    char buf[transfer::tcp::kFrameHeaderSize];
    if (!ReadExactly(buf, sizeof(buf))) return false;
    auto h = transfer::tcp::DecodeFrameHeader(buf);
    if (!h.ok()) return false;
    *out = *h;
    payload->assign(h->length, '\0');
    return ReadExactly(payload->data(), payload->size());
  }
  // True if the server closed the connection (EOF or reset) within the receive timeout;
  // bytes still arriving before that are read and thrown away.
  bool ClosedByPeer() {
    char buf[64 << 10];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  // True if the connection is closed (EOF or reset) now, without waiting; reads nothing
  // when data is waiting instead.
  bool ClosedNow() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  // First half of the handshake: sends HELLO with `client_nonce` (random if empty) and
  // returns the server's challenge (nonce + proof); "" on failure.
  std::string StartHello(std::string client_nonce = "") {
    using namespace transfer::tcp;
    if (client_nonce.empty()) client_nonce = crypto::RandomBytes(kHelloNonceBytes);
    client_nonce_ = client_nonce;
    FrameHeader h;
    h.type = FrameType::kHello;
    h.length = client_nonce.size();
    if (!TrySend(Frame(h, client_nonce))) return "";
    FrameHeader r;
    std::string p;
    if (!ReadReply(&r, &p) || r.status != 0) return "";
    return p;
  }
  // The whole handshake under `secret`; asserts that the server accepted it.
  void Hello(const std::string& secret = "") {
    using namespace transfer::tcp;
    std::string challenge = StartHello();
    ASSERT_EQ(challenge.size(), kHelloNonceBytes + kHelloProofBytes);
    std::string server_nonce = challenge.substr(0, kHelloNonceBytes);
    ASSERT_EQ(challenge.substr(kHelloNonceBytes),
              HelloServerProof(secret, client_nonce_, server_nonce));
    FrameHeader h;
    h.type = FrameType::kHelloProof;
    std::string proof = HelloClientProof(secret, server_nonce, client_nonce_);
    h.length = proof.size();
    SendFrame(h, proof);
    FrameHeader r;
    std::string p;
    ASSERT_TRUE(ReadReply(&r, &p));
    ASSERT_EQ(r.status, 0) << p;
  }
  const std::string& client_nonce() const { return client_nonce_; }

 private:
  bool ReadExactly(char* p, size_t n) {
    while (n > 0) {
      ssize_t k = ::recv(fd_, p, n, 0);
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string client_nonce_;
};

}  // namespace ferry::testing
