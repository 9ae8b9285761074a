// tcp_stream_bw: one plain TCP stream over 127.0.0.1 between two processes, each walking its
// own cold buffer of the working-set size. The second baseline for Ferry's tcp throughput
// beside iperf3: iperf3 sends from and receives into one cache-hot buffer of `-l` bytes,
// while a transfer engine moves blocks out of and into buffers far larger than the caches,
// so both kernel copies miss. This program does the same thing with no engine in between:
// the sender send()s blocks of `block` bytes walking a `working-set` buffer, the receiver
// recv()s up to `block` bytes at a time walking another one.
//
//   tcp_stream_bw --block-size 4M --working-set 1G --duration 2
//
// Both buffers are faulted in before timing. Default socket options, as iperf3 uses.
// The rate is the bytes the receiver got over the time from the first send until the
// receiver acknowledged the end of the stream. Prints one human line and one JSON object line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "bench_util.h"

namespace {

// Every blocking call gives up after 10 s: the benchmark never hangs.
void SetTimeouts(int fd) {
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A private, faulted-in mapping of `n` bytes (nullptr on failure).
char* MapTouched(uint64_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memset(p, 1, n);
  return static_cast<char*>(p);
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

// The receiving child: recv()s into its buffer until EOF, then answers the byte count.
int Receive(int lfd, uint64_t block, uint64_t ws) {
  char* buf = MapTouched(ws);
  if (buf == nullptr) return 1;
  timeval tv{10, 0};
  setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int fd = accept(lfd, nullptr, nullptr);
  if (fd < 0) return 1;
  SetTimeouts(fd);
  uint64_t total = 0, off = 0;
  while (true) {
    ssize_t k = recv(fd, buf + off, block - (off % block), 0);
    if (k < 0) return 1;
    if (k == 0) break;
    total += static_cast<uint64_t>(k);
    off += static_cast<uint64_t>(k);
    if (off + block > ws) off = 0;
  }
  return SendAll(fd, reinterpret_cast<const char*>(&total), sizeof(total)) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::bench;
  uint64_t block = ParseBytes(Flag(argc, argv, "block-size", "4M"));
  uint64_t ws = ParseBytes(Flag(argc, argv, "working-set", "1G"));
  double duration = std::atof(Flag(argc, argv, "duration", "2").c_str());
  if (block == 0 || ws < block || duration <= 0) {
    std::fprintf(stderr,
                 "usage: tcp_stream_bw [--block-size 4M] [--working-set 1G] [--duration 2]\n");
    return 2;
  }
  ws -= ws % block;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd, 1) != 0 || getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("tcp_stream_bw: listen");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) _exit(Receive(lfd, block, ws));
  close(lfd);
  char* buf = MapTouched(ws);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  SetTimeouts(fd);
  if (buf == nullptr || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("tcp_stream_bw: connect");
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return 1;
  }
  uint64_t sent = 0, off = 0;
  bool ok = true;
  double start = NowSeconds(), now = start;
  while (ok && now - start < duration) {
    for (int k = 0; k < 16 && ok; ++k) {
      ok = SendAll(fd, buf + off, block);
      sent += block;
      off += block;
      if (off + block > ws) off = 0;
    }
    now = NowSeconds();
  }
  uint64_t received = 0;
  ok = ok && shutdown(fd, SHUT_WR) == 0 &&
       recv(fd, &received, sizeof(received), MSG_WAITALL) == sizeof(received);
  double secs = NowSeconds() - start;
  close(fd);
  int status = 0;
  waitpid(child, &status, 0);
  if (!ok || received != sent || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "tcp_stream_bw: stream failed (sent %llu, received %llu)\n",
                 static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received));
    return 1;
  }
  double gbps = static_cast<double>(received) / secs / 1e9;
  std::printf("tcp stream  block %llu B  working set %llu MiB  %.2f GB/s  (%.2f s)\n",
              static_cast<unsigned long long>(block), static_cast<unsigned long long>(ws >> 20),
              gbps, secs);
  std::printf(
      "{\"bench\":\"tcp_stream_bw\",\"block_size\":%llu,\"working_set\":%llu,\"seconds\":%.3f,"
      "\"bytes\":%llu,\"gbps\":%.4f}\n",
      static_cast<unsigned long long>(block), static_cast<unsigned long long>(ws), secs,
      static_cast<unsigned long long>(received), gbps);
  return 0;
}
