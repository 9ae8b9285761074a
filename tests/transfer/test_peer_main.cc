// A transfer-engine peer process for the fault tests.
//
//   transfer_test_peer <local_name> <buffer_bytes>
//
// Registers one buffer of buffer_bytes (filled with 0x5A in its first and last KiB),
// prints "READY <segment name> <buffer address>" on stdout, then serves until stdin
// closes or it is killed.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ferry/transfer_engine.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <local_name> <buffer_bytes>\n", argv[0]);
    return 2;
  }
  size_t bytes = std::strtoull(argv[2], nullptr, 10);
  void* buf = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 3;
  ferry::TransferEngineOptions o;
  o.local_name = argv[1];
  auto engine = ferry::TransferEngine::Create(o);
  if (!engine.ok()) {
    std::fprintf(stderr, "peer: %s\n", engine.status().ToString().c_str());
    return 1;
  }
  if (auto s = (*engine)->RegisterMemory({buf, bytes}); !s.ok()) {
    std::fprintf(stderr, "peer: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("READY %s %llu\n", (*engine)->local_name().c_str(),
              static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(buf)));
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  return 0;
}
