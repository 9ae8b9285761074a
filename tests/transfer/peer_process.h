// PeerProcess: a transfer_test_peer child process (see test_peer_main.cc) for tests that
// need a target engine in another process: killed and stopped at will, started with its
// own limits (RLIMIT_NOFILE), measured from outside (/proc/<pid>).
//
//   PeerProcess peer("127.0.0.1:0", 64 << 20, {"params=tcp_idle_timeout_s=1"});
//   engine->OpenSegment(peer.name());
//   std::string counters = peer.Command("counters");   // "COUNTERS inbound_rejected=..."
//
// Needs FERRY_TEST_PEER (the peer binary's path) defined by the build. Kill, Signal,
// Alive, CpuTime, RssBytes: see PipedChild. Killed (SIGKILL) and reaped on destruction.
// Thread-compatible.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "piped_child.h"

namespace ferry::testing {

class PeerProcess : public PipedChild {
 public:
  PeerProcess(const std::string& name, size_t bytes, const std::vector<std::string>& options = {})
      : PipedChild(Argv(name, bytes, options)) {
    std::string line = ReadLine(std::chrono::seconds(10));
    std::istringstream is(line);
    std::string ready;
    is >> ready >> name_ >> addr_;
    EXPECT_EQ(ready, "READY") << "peer output: " << line;
  }

  // The value of `key=` in a COUNTERS reply.
  uint64_t Counter(const std::string& key) {
    std::string line = Command("counters");
    size_t at = line.find(" " + key + "=");
    if (at == std::string::npos) {
      ADD_FAILURE() << "no " << key << " in '" << line << "'";
      return 0;
    }
    return std::stoull(line.substr(at + key.size() + 2));
  }
  const std::string& name() const { return name_; }
  uint64_t addr() const { return addr_; }

 private:
  static std::vector<std::string> Argv(const std::string& name, size_t bytes,
                                       const std::vector<std::string>& options) {
    std::vector<std::string> argv = {FERRY_TEST_PEER, name, std::to_string(bytes)};
    argv.insert(argv.end(), options.begin(), options.end());
    return argv;
  }

  std::string name_;
  uint64_t addr_ = 0;
};

}  // namespace ferry::testing
