#include "bench/transfer/transfer_bench.h"
#include "common/byte_size.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace ferry::bench {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string OpName(TransferOp op) { return op == TransferOp::kWrite ? "write" : "read"; }

}  // namespace

void FillPattern(char* p, size_t n, uint64_t offset) {
  for (size_t i = 0; i < n;) {
    uint64_t pos = offset + i, word = Mix(pos / 8);
    size_t in_word = pos % 8, take = std::min<size_t>(8 - in_word, n - i);
    std::memcpy(p + i, reinterpret_cast<const char*>(&word) + in_word, take);
    i += take;
  }
}

bool CheckPattern(const char* p, size_t n, uint64_t offset) {
  std::vector<char> expect(std::min<size_t>(n, 1 << 20));
  for (size_t done = 0; done < n; done += expect.size()) {
    size_t len = std::min(expect.size(), n - done);
    FillPattern(expect.data(), len, offset + done);
    if (std::memcmp(expect.data(), p + done, len) != 0) return false;
  }
  return true;
}

std::string BenchResult::HumanLine() const {
  return fmt::format(
      "{:<9} {:<5} block {:>8}  batch {:>3}  threads {}  {:>7.3f} GB/s  {:>8} req  "
      "lat p50 {:.1f} p90 {:.1f} p99 {:.1f} max {:.1f} us  {}",
      transport, OpName(config.op), FormatByteSize(config.block_size), config.batch_size,
      config.threads, gbps(), requests, lat_p50_us, lat_p90_us, lat_p99_us, lat_max_us,
      verified ? "verified" : "NOT VERIFIED");
}

std::string BenchResult::JsonLine() const {
  return fmt::format(
      "{{\"bench\":\"transfer\",\"transport\":\"{}\",\"op\":\"{}\",\"block_size\":{},"
      "\"batch_size\":{},\"threads\":{},\"working_set\":{},\"seconds\":{:.4f},\"bytes\":{},"
      "\"requests\":{},\"gbps\":{:.4f},\"lat_p50_us\":{:.2f},\"lat_p90_us\":{:.2f},"
      "\"lat_p99_us\":{:.2f},\"lat_max_us\":{:.2f},\"verified\":{}}}",
      transport, OpName(config.op), config.block_size, config.batch_size, config.threads,
      working_set, seconds, bytes, requests, gbps(), lat_p50_us, lat_p90_us, lat_p99_us, lat_max_us,
      verified ? "true" : "false");
}

// ---- target --------------------------------------------------------------------------

Result<TargetMemory> ParseTargetMemory(const std::string& text) {
  if (text == "registered") return TargetMemory::kRegistered;
  if (text == "managed") return TargetMemory::kManaged;
  return InvalidArgumentError("target memory must be registered or managed, not '" + text + "'");
}

int RunTargetRole(uint64_t working_set, const std::string& transport, std::chrono::seconds lifetime,
                  TargetMemory memory) {
  TransferEngineOptions o;
  o.transport = transport;
  auto engine = TransferEngine::Create(o);
  if (!engine.ok()) {
    fmt::print(stderr, "target: {}\n", engine.status().ToString());
    return 1;
  }
  std::unique_ptr<char[]> own;
  char* buf = nullptr;
  if (memory == TargetMemory::kManaged) {
    auto p = (*engine)->AllocateManagedBuffer(working_set);  // registered already
    if (!p.ok()) {
      fmt::print(stderr, "target: {}\n", p.status().ToString());
      return 1;
    }
    buf = static_cast<char*>(*p);
    FillPattern(buf, working_set, 0);
  } else {
    own.reset(new char[working_set]);
    buf = own.get();
    FillPattern(buf, working_set, 0);
    Status s = (*engine)->RegisterMemory(MemoryRegion{buf, working_set});
    if (!s.ok()) {
      fmt::print(stderr, "target: {}\n", s.ToString());
      return 1;
    }
  }
  fmt::print("{} {}\n", kTargetReady, (*engine)->local_name());
  std::fflush(stdout);
  ::dup2(STDERR_FILENO, STDOUT_FILENO);  // later output (logs) must not fill the closed pipe
  // Serve until stdin closes (the initiator is done) or the lifetime runs out.
  Deadline until = Deadline::In(lifetime);
  while (!until.Expired()) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    int n = ::poll(&p, 1, std::min(until.RemainingMsForPoll(), 1000));
    if (n < 0 && errno != EINTR) break;
    if (n > 0) {
      char c[64];
      if (::read(STDIN_FILENO, c, sizeof(c)) <= 0) break;  // EOF
    }
  }
  return 0;
}

Result<std::unique_ptr<TargetProcess>> TargetProcess::Start(uint64_t working_set,
                                                            const std::string& transport,
                                                            TargetMemory memory,
                                                            std::chrono::milliseconds timeout) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return InternalError("pipe failed");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return InternalError("pipe failed");
  }
  std::string ws = std::to_string(working_set);
  pid_t pid = ::fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    const char* argv[] = {"ferry",
                          "bench",
                          "transfer",
                          "--role",
                          "target",
                          "--working-set",
                          ws.c_str(),
                          "--transport",
                          transport.c_str(),
                          "--target-memory",
                          memory == TargetMemory::kManaged ? "managed" : "registered",
                          nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  auto target = std::unique_ptr<TargetProcess>(new TargetProcess(pid, in[1], ""));
  // Read the ready line (bounded by `timeout`).
  Deadline d = Deadline::In(timeout);
  std::string line;
  while (line.find('\n') == std::string::npos) {
    pollfd p{out[0], POLLIN, 0};
    int n = ::poll(&p, 1, d.RemainingMsForPoll());
    if (n == 0 || d.Expired()) {
      ::close(out[0]);
      return DeadlineExceededError("target process did not announce itself in time");
    }
    char buf[256];
    ssize_t k = n > 0 ? ::read(out[0], buf, sizeof(buf)) : -1;
    if (k <= 0 && !(k < 0 && errno == EINTR)) {
      ::close(out[0]);
      return UnavailableError("target process exited before it was ready (see its stderr)");
    }
    if (k > 0) line.append(buf, static_cast<size_t>(k));
  }
  ::close(out[0]);  // the target writes nothing else; a write would get EPIPE, not block
  line.resize(line.find('\n'));
  std::string prefix = std::string(kTargetReady) + " ";
  if (line.rfind(prefix, 0) != 0) return InternalError("unexpected target output: " + line);
  target->segment_ = line.substr(prefix.size());
  return target;
}

TargetProcess::~TargetProcess() {
  ::close(stdin_fd_);  // EOF: the target exits
  Deadline d = Deadline::In(std::chrono::seconds(5));
  while (!d.Expired()) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

}  // namespace ferry::bench
