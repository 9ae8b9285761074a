// `ferry demo-transfer`: the transfer engine on its own (issue 2's demo). Starts a target
// process, then from this process writes 1 GiB into it and reads it back over tcp and over
// shm, checks every byte by checksum, and prints what moved and how fast (~10 s).
#include <fmt/core.h>

#include <cstring>
#include <memory>
#include <string>

#include "command.h"
#include "common/byte_size.h"
#include "transfer_bench.h"

namespace ferry::cli {
namespace {

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

FERRY_REGISTER_COMMAND(
    demo_transfer, "demo-transfer",
    "Moves 1 GiB between two local processes over tcp and shm, and checks it",
    [](CLI::App& cmd) -> Runner {
      auto ws = std::make_shared<std::string>("1G");
      cmd.add_option("--bytes", *ws, "Bytes to move per transport (default 1G)");
      return [ws] {
        auto n = ParseByteSize(*ws);
        if (n.ok() && *n < (4u << 20)) n = InvalidArgumentError("--bytes must be at least 4M");
        if (!n.ok()) {
          fmt::print(stderr, "--bytes: {}\n", n.status().message());
          return 2;
        }
        *n -= *n % (4u << 20);
        if (*n == 0) *n = 4u << 20;
        fmt::print(
            "ferry demo-transfer: a target process registers {}; this process moves it over "
            "tcp, then shm\n",
            FormatByteSize(*n));
        auto target = TargetProcess::Start(*n, "auto");
        if (!target.ok()) {
          fmt::print(stderr, "cannot start the target: {}\n", target.status().ToString());
          return 1;
        }
        fmt::print("target pid {} serving segment {}\n", (*target)->pid(), (*target)->segment());
        int rc = MoveAndVerify("tcp", (*target)->segment(), *n);
        rc |= MoveAndVerify("shm", (*target)->segment(), *n);
        fmt::print("{}\n", rc == 0 ? "demo OK" : "demo FAILED");
        return rc;
      };
    });

}  // namespace ferry::cli
