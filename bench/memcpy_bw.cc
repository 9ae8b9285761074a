// memcpy_bw: single-thread memcpy bandwidth over a cold working set, in block-size chunks.
// The baseline for Ferry's shm transport: the same source/destination working sets the
// transfer benchmark cycles through, copied by one thread.
//
//   memcpy_bw --block-size 4M --working-set 1G --duration 2
//
// Prints one human line and one JSON object line.
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_util.h"

int main(int argc, char** argv) {
  using namespace ferry::bench;
  uint64_t block = ParseBytes(Flag(argc, argv, "block-size", "4M"));
  uint64_t ws = ParseBytes(Flag(argc, argv, "working-set", "1G"));
  double duration = std::atof(Flag(argc, argv, "duration", "2").c_str());
  if (block == 0 || ws < block || duration <= 0) {
    std::fprintf(stderr, "usage: memcpy_bw [--block-size 4M] [--working-set 1G] [--duration 2]\n");
    return 2;
  }
  ws -= ws % block;
  // Source and destination both span the working set, as in `ferry bench transfer`.
  std::vector<char> src(ws), dst(ws);
  for (uint64_t i = 0; i < ws; i += 4096) src[i] = static_cast<char>(i >> 12);
  std::memset(dst.data(), 1, ws);  // fault every page in before timing

  uint64_t bytes = 0, off = 0;
  double start = NowSeconds(), now = start;
  while (now - start < duration) {
    for (int k = 0; k < 16; ++k) {
      std::memcpy(&dst[off], &src[off], block);
      bytes += block;
      off += block;
      if (off + block > ws) off = 0;
    }
    now = NowSeconds();
  }
  double secs = now - start;
  double gbps = static_cast<double>(bytes) / secs / 1e9;
  if (std::memcmp(dst.data(), src.data(), block) != 0) {
    std::fprintf(stderr, "memcpy_bw: copy check failed\n");
    return 1;
  }
  std::printf("memcpy  block %llu B  working set %llu MiB  %.2f GB/s  (%.2f s)\n",
              static_cast<unsigned long long>(block), static_cast<unsigned long long>(ws >> 20),
              gbps, secs);
  std::printf(
      "{\"bench\":\"memcpy\",\"block_size\":%llu,\"working_set\":%llu,\"seconds\":%.3f,"
      "\"bytes\":%llu,\"gbps\":%.4f}\n",
      static_cast<unsigned long long>(block), static_cast<unsigned long long>(ws), secs,
      static_cast<unsigned long long>(bytes), gbps);
  return 0;
}
