// A transfer-engine peer process for the tests that need a target in another process.
//
//   transfer_test_peer <local_name> <buffer_bytes> [key=value ...]
//
// Options: transport=<name> (default auto), secret=<s>, params=<transport_params>,
// max_notes=<n>, max_note_bytes=<n>,
// nofile=<n> (RLIMIT_NOFILE, set before the engine starts).
// Logs go to stderr. Registers one buffer of buffer_bytes (filled with 0x5A in its first and last
// KiB), prints "READY <segment name> <buffer address>" on stdout, then answers commands read from
// stdin, one a line, until stdin closes or it is killed:
//   counters  ->  "COUNTERS inbound_rejected=<n> notifications_dropped=<n>
//                  bytes_received=<n>"
//   take      ->  "TAKEN <count> <first word of each message, oldest first>..."
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ferry/transfer_engine.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <local_name> <buffer_bytes> [key=value ...]\n", argv[0]);
    return 2;
  }
  // stdout carries the replies: logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("peer"));
  ferry::TransferEngineOptions o;
  o.local_name = argv[1];
  size_t bytes = std::strtoull(argv[2], nullptr, 10);
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    size_t eq = arg.find('=');
    std::string key = arg.substr(0, eq), value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (key == "transport") {
      o.transport = value;
    } else if (key == "secret") {
      o.secret = value;
    } else if (key == "params") {
      o.transport_params = value;
    } else if (key == "max_notes") {
      o.max_pending_notifications = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "max_note_bytes") {
      o.max_pending_notification_bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "nofile") {
      rlim_t n = std::strtoull(value.c_str(), nullptr, 10);
      rlimit lim{n, n};
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        std::perror("peer: setrlimit");
        return 1;
      }
    } else {
      std::fprintf(stderr, "peer: unknown option '%s'\n", arg.c_str());
      return 2;
    }
  }
  void* buf = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 3;
  std::memset(buf, 0x5A, bytes < 1024 ? bytes : 1024);
  if (bytes >= 2048) std::memset(static_cast<char*>(buf) + bytes - 1024, 0x5A, 1024);
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
  char line[256];
  while (std::fgets(line, sizeof(line), stdin) != nullptr) {
    std::string cmd(line);
    while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r')) cmd.pop_back();
    if (cmd == "counters") {
      ferry::TransferCounters c = (*engine)->counters();
      std::printf("COUNTERS inbound_rejected=%llu notifications_dropped=%llu bytes_received=%llu\n",
                  static_cast<unsigned long long>(c.inbound_rejected),
                  static_cast<unsigned long long>(c.notifications_dropped),
                  static_cast<unsigned long long>(c.bytes_received));
    } else if (cmd == "take") {
      auto notes = (*engine)->TakeNotifications();
      std::string out = "TAKEN " + std::to_string(notes.size());
      for (const auto& n : notes) {
        out += " " + n.message.substr(0, std::min<size_t>(n.message.find(' '), 32));
      }
      std::printf("%s\n", out.c_str());
    } else {
      std::printf("ERROR unknown command '%s'\n", cmd.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
