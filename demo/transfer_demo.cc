#include "demo/transfer_demo.h"

#include <fmt/core.h>

#include <cstring>
#include <string>

#include "bench/transfer/transfer_bench.h"
#include "common/byte_size.h"

namespace ferry::demo {
namespace {

using bench::BenchConfig;
using bench::BenchInitiator;
using bench::TargetProcess;

uint64_t Checksum(const char* p, size_t n) {  // FNV-1a over 8-byte words
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  return h;
}

// Writes the whole working set, reads it back into a cleared buffer and compares
// checksums. Returns the exit code.
int MoveAndVerify(const std::string& transport, const std::string& target, uint64_t ws) {
  auto init = BenchInitiator::Create(transport, "", target, ws);
  if (!init.ok()) {
    fmt::print(stderr, "{}: {}\n", transport, init.status().ToString());
    return 1;
  }
  BenchInitiator& b = **init;
  uint64_t sum = Checksum(b.local(), ws);
  BenchConfig c;
  c.block_size = 4u << 20;
  c.batch_size = 8;
  c.duration_s = 30;  // bounded: total_bytes ends it first
  c.total_bytes = ws;
  c.op = TransferOp::kWrite;
  auto w = b.Run(c);
  if (!w.ok()) {
    fmt::print(stderr, "{} write: {}\n", transport, w.status().ToString());
    return 1;
  }
  std::memset(b.local(), 0, ws);
  c.op = TransferOp::kRead;
  auto r = b.Run(c);
  if (!r.ok()) {
    fmt::print(stderr, "{} read: {}\n", transport, r.status().ToString());
    return 1;
  }
  bool same = Checksum(b.local(), ws) == sum;
  fmt::print(
      "{:<4} wrote {} in {:.2f} s ({:.2f} GB/s), read it back in {:.2f} s ({:.2f} GB/s): "
      "{}\n",
      transport, FormatByteSize(w->bytes), w->seconds, w->gbps(), r->seconds, r->gbps(),
      same ? "checksums match" : "CHECKSUM MISMATCH");
  fmt::print("{}\n{}\n", w->JsonLine(), r->JsonLine());
  return same ? 0 : 1;
}

}  // namespace

int RunTransferDemo(uint64_t bytes) {
  fmt::print(
      "ferry demo-transfer: a target process registers {}; this process moves it over "
      "tcp, then shm\n",
      FormatByteSize(bytes));
  auto target = TargetProcess::Start(bytes, "auto");
  if (!target.ok()) {
    fmt::print(stderr, "cannot start the target: {}\n", target.status().ToString());
    return 1;
  }
  fmt::print("target pid {} serving segment {}\n", (*target)->pid(), (*target)->segment());
  int rc = MoveAndVerify("tcp", (*target)->segment(), bytes);
  rc |= MoveAndVerify("shm", (*target)->segment(), bytes);
  fmt::print("{}\n", rc == 0 ? "demo OK" : "demo FAILED");
  return rc;
}

}  // namespace ferry::demo
