// A ucx transport target in its own process, for the ucx tests that kill or stop the peer.
//
//   ucx_test_peer <ucx_tls> <buffer_bytes>
//
// Registers one buffer of buffer_bytes (zeroed), prints "READY <descriptor JSON>" on stdout
// (the JSON holds transport_info["ucx"]), then serves until stdin closes or it is killed.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "transfer/transport.h"
#include "ucx_test_host.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <ucx_tls> <buffer_bytes>\n", argv[0]);
    return 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("peer"));
  size_t bytes = std::strtoull(argv[2], nullptr, 10);
  void* buf = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 3;
  ferry::transfer::ucx::UcxTestHost host("ucx-peer:1");
  ferry::transfer::TransportOptions o;
  o.extra = {{"ucx_tls", argv[1]}};
  if (std::string(argv[1]) == "sm") o.extra.emplace_back("ucx_err_mode", "none");
  auto t = ferry::transfer::TransportRegistry::Create("ucx", o, &host);
  if (!t.ok()) {
    std::fprintf(stderr, "peer: %s\n", t.status().ToString().c_str());
    return 1;
  }
  host.set_transport(t->get());
  host.Register(buf, bytes);
  std::printf("READY %s\n", host.LocalDescriptor().ToJson().c_str());
  std::fflush(stdout);
  char line[256];
  while (std::fgets(line, sizeof(line), stdin) != nullptr) {
  }
  return 0;
}
