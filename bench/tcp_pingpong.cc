// tcp_pingpong: plain blocking TCP ping-pong over 127.0.0.1 between two processes, the
// baseline for Ferry's small-write round trip. The child echoes each `size`-byte message;
// the parent times every round trip.
//
//   tcp_pingpong --size 4096 --duration 2
//
// Prints one human line and one JSON object line (round trip in microseconds).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_util.h"

namespace {

// Every blocking call gives up after 5 s: the benchmark never hangs.
void SetTimeouts(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool RecvAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t k = recv(fd, p, n, 0);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::bench;
  size_t size = ParseBytes(Flag(argc, argv, "size", "4096"));
  double duration = std::atof(Flag(argc, argv, "duration", "2").c_str());
  if (size == 0 || duration <= 0) {
    std::fprintf(stderr, "usage: tcp_pingpong [--size 4096] [--duration 2]\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd, 1) != 0 || getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("tcp_pingpong: listen");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {  // Echo server.
    timeval tv{10, 0};
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) _exit(1);
    SetTimeouts(fd);
    std::vector<char> buf(size);
    while (RecvAll(fd, buf.data(), size) && SendAll(fd, buf.data(), size)) {
    }
    _exit(0);
  }
  close(lfd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  SetTimeouts(fd);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("tcp_pingpong: connect");
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return 1;
  }
  std::vector<char> out(size, 'p'), in(size);
  std::vector<double> rtt_us;
  bool ok = true;
  for (int i = 0; i < 200 && ok; ++i) {  // warm-up
    ok = SendAll(fd, out.data(), size) && RecvAll(fd, in.data(), size);
  }
  double start = NowSeconds(), now = start;
  while (ok && now - start < duration) {
    double t0 = NowSeconds();
    ok = SendAll(fd, out.data(), size) && RecvAll(fd, in.data(), size);
    now = NowSeconds();
    rtt_us.push_back((now - t0) * 1e6);
  }
  close(fd);
  int status = 0;
  waitpid(child, &status, 0);
  if (!ok || std::memcmp(in.data(), out.data(), size) != 0) {
    std::fprintf(stderr, "tcp_pingpong: echo failed\n");
    return 1;
  }
  size_t n = rtt_us.size();
  double p50 = Percentile(rtt_us, 0.5), p99 = Percentile(rtt_us, 0.99);
  std::printf("tcp ping-pong  %zu B  round trip p50 %.1f us  p99 %.1f us  (%zu round trips)\n",
              size, p50, p99, n);
  std::printf(
      "{\"bench\":\"tcp_pingpong\",\"size\":%zu,\"round_trips\":%zu,\"rtt_p50_us\":%.2f,"
      "\"rtt_p99_us\":%.2f}\n",
      size, n, p50, p99);
  return 0;
}
