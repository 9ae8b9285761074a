// Put/get bandwidth of Ferry's ucx transport, driven directly (no engine), target in a
// second process like ucx_perftest's server. bench/ucx_baselines.sh runs it beside
// ucx_perftest with the same UCX_TLS.
//
//   ucx_transport_bench --tls tcp --op write --sizes 1M,4M --working-set 256M --inflight 32
//   ucx_transport_bench --tls sm --params ucx_err_mode=none --target-memory ucx --working-set 4M
//
// Prints one JSON object per size ({"bench":"ucx_transport","tls":..,"op":..,"size":..,
// "inflight":..,"MBps":..}) and a human line on stderr.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "bench_util.h"
#include "transfer/transport.h"
#include "transfer/ucx/ucx_transport.h"

namespace {

using namespace ferry;
using namespace ferry::transfer;

// A host with one registered buffer.
class BenchHost : public TransportHost {
 public:
  void set_buffer(void* p, size_t n) {
    std::lock_guard lock(mu_);
    buffer_ = {reinterpret_cast<uintptr_t>(p), n, "cpu", true};
  }
  SegmentDescriptor LocalDescriptor() const override {
    SegmentDescriptor d;
    d.name = "bench-target:1";
    d.pid = ::getpid();
    d.version = 1;
    std::lock_guard lock(mu_);
    if (buffer_.length > 0) d.buffers = {buffer_};
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

 private:
  BufferDescriptor buffer_;
  mutable std::mutex mu_;
  const Transport* transport_ = nullptr;
};

void* MapBytes(size_t n) {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memset(p, 1, n);  // fault the pages in before measuring
  return p;
}

TransportOptions Options(const std::string& tls, const std::string& params) {
  TransportOptions o;
  if (!tls.empty()) o.extra.emplace_back("ucx_tls", tls);
  size_t start = 0;
  while (start < params.size()) {
    size_t comma = params.find(',', start);
    std::string kv =
        params.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) o.extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return o;
}

// Target role: serve a working set until stdin closes. `memory`: "mapped" (the process's
// own pages, as the engine registers them) or "ucx" (UcxTransport::AllocateMemory, what
// the engine's AllocateManagedBuffer gives under ucx).
int RunTarget(const std::string& tls, const std::string& params, size_t working_set,
              const std::string& memory) {
  BenchHost host;
  auto t = TransportRegistry::Create("ucx", Options(tls, params), &host);
  if (!t.ok()) {
    fmt::print(stderr, "target: {}\n", t.status().ToString());
    return 1;
  }
  void* buf = nullptr;
  if (memory == "ucx") {
    auto p = (*t)->AllocateMemory(working_set);
    if (!p.ok()) {
      fmt::print(stderr, "target: {}\n", p.status().ToString());
      return 1;
    }
    buf = *p;
    std::memset(buf, 1, working_set);
  } else {
    buf = MapBytes(working_set);
  }
  if (buf == nullptr) return 3;
  host.set_buffer(buf, working_set);
  host.set_transport(t->get());
  (*t)->LocalMemoryChanged();
  std::printf("READY %s\n", host.LocalDescriptor().ToJson().c_str());
  std::fflush(stdout);
  char line[64];
  while (std::fgets(line, sizeof(line), stdin) != nullptr) {
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Bandwidth of Ferry's ucx transport (target in a child process)"};
  std::string role = "initiator", tls, op = "write", params, memory = "mapped";
  std::vector<std::string> sizes = {"1M", "4M"};
  std::string ws_text = "256M";
  int inflight = 32;
  double duration = 3;
  app.add_option("--role", role, "initiator (default; starts the target) or target");
  app.add_option("--tls", tls, "ucx_tls (e.g. tcp, sm); default UCX's");
  app.add_option("--params", params, "more transport params, k=v,k=v (e.g. ucx_poll_us=100)");
  app.add_option("--op", op, "write or read");
  app.add_option("--sizes", sizes, "slice sizes")->delimiter(',');
  app.add_option("--working-set", ws_text, "bytes on each side (default 256M)");
  app.add_option("--inflight", inflight, "slices in flight (default 32)");
  app.add_option("--target-memory", memory,
                 "mapped (the target's own pages; default) or ucx (allocated by the transport)");
  app.add_option("--duration", duration, "seconds per size (default 3)");
  CLI11_PARSE(app, argc, argv);
  const size_t ws = ferry::bench::ParseBytes(ws_text);
  if (ws == 0 || inflight < 1 || (op != "write" && op != "read") ||
      (memory != "mapped" && memory != "ucx")) {
    fmt::print(stderr, "bad --working-set, --inflight, --op or --target-memory\n");
    return 2;
  }
  if (role == "target") return RunTarget(tls, params, ws, memory);

  // Start the target process and read its descriptor.
  int out[2], in[2];
  if (::pipe(out) != 0 || ::pipe(in) != 0) return 3;
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], 1);
    ::dup2(in[0], 0);
    ::close(out[0]);
    ::close(in[1]);
    std::string ws_arg = std::to_string(ws);
    ::execl("/proc/self/exe", argv[0], "--role", "target", "--tls", tls.c_str(), "--params",
            params.c_str(), "--working-set", ws_arg.c_str(), "--target-memory", memory.c_str(),
            nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  std::string line;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[65536];
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  auto stop_child = [&] {
    ::close(in[1]);
    ::kill(child, SIGTERM);
    ::waitpid(child, nullptr, 0);
  };
  if (line.rfind("READY ", 0) != 0) {
    fmt::print(stderr, "target did not start: {}\n", line);
    stop_child();
    return 1;
  }
  line.resize(line.find('\n'));
  auto peer = SegmentDescriptor::FromJson(line.substr(6));
  if (!peer.ok()) {
    fmt::print(stderr, "bad target descriptor: {}\n", peer.status().ToString());
    stop_child();
    return 1;
  }
  char* local = static_cast<char*>(MapBytes(ws));
  auto t = TransportRegistry::Create("ucx", Options(tls, params), nullptr);
  if (!t.ok() || local == nullptr) {
    fmt::print(stderr, "initiator: {}\n", t.ok() ? "out of memory" : t.status().ToString());
    stop_child();
    return 1;
  }
  const uint64_t remote = peer->buffers.at(0).addr;
  int rc = 0;
  for (const std::string& size_text : sizes) {
    const size_t size = ferry::bench::ParseBytes(size_text);
    if (size == 0 || size > ws) {
      fmt::print(stderr, "bad size {}\n", size_text);
      rc = 2;
      break;
    }
    const size_t slots = ws / size;
    // The window is refilled half at a time, in one Submit (as the engine hands a batch's
    // slices to a transport), and the completions wake this thread only when half of it
    // is free: the measurement is the transport, not a wake-up per slice.
    const int low = inflight / 2;
    std::mutex mu;
    std::condition_variable cv;
    int outstanding = 0;
    bool waiting = false;
    uint64_t done_bytes = 0, failures = 0;
    size_t next = 0;
    auto submit = [&](int n) {
      std::vector<Slice> batch(static_cast<size_t>(n));
      for (Slice& s : batch) {
        s.op = op == "write" ? TransferOp::kWrite : TransferOp::kRead;
        size_t slot = next++ % slots;
        s.local = local + slot * size;
        s.remote = remote + slot * size;
        s.length = size;
        s.done = [&, size](const Status& st) {
          std::lock_guard lock(mu);
          --outstanding;
          if (st.ok()) {
            done_bytes += size;
          } else if (failures++ == 0) {
            fmt::print(stderr, "slice failed: {}\n", st.ToString());
          }
          if (waiting && (outstanding <= low || failures > 0)) cv.notify_one();
        };
      }
      (*t)->Submit(*peer, batch, Deadline::In(std::chrono::seconds(30)));
    };
    auto run_for = [&](double seconds) -> std::pair<uint64_t, double> {
      uint64_t start_bytes;
      {
        std::lock_guard lock(mu);
        start_bytes = done_bytes;
      }
      auto start = std::chrono::steady_clock::now();
      auto end = start + std::chrono::duration<double>(seconds);
      std::unique_lock lock(mu);
      while (std::chrono::steady_clock::now() < end && failures == 0) {
        const int n = inflight - outstanding;
        if (n > 0) {
          outstanding += n;
          lock.unlock();
          submit(n);
          lock.lock();
        }
        waiting = true;
        cv.wait_until(lock, end, [&] { return outstanding <= low || failures > 0; });
        waiting = false;
      }
      waiting = true;
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return outstanding == 0; });
      waiting = false;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return {done_bytes - start_bytes, secs};
    };
    // Warm-up: half a second (at most a quarter of the run), not measured.
    run_for(std::min(0.5, duration / 4));
    auto [bytes, secs] = run_for(duration);
    double mbps = static_cast<double>(bytes) / secs / 1e6;
    std::printf(
        "{\"bench\":\"ucx_transport\",\"tls\":\"%s\",\"op\":\"%s\",\"size\":%zu,\"inflight\":%d,"
        "\"working_set\":%zu,\"target_memory\":\"%s\",\"MBps\":%.1f,\"failures\":%llu}\n",
        tls.c_str(), op.c_str(), size, inflight, ws, memory.c_str(), mbps,
        static_cast<unsigned long long>(failures));
    std::fflush(stdout);
    fmt::print(stderr, "ucx {} {} {}: {:.1f} MB/s ({} in flight)\n", tls, op, size_text, mbps,
               inflight);
    if (failures > 0) rc = 1;
  }
  t->reset();
  stop_child();
  return rc;
}
