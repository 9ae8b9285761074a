// PeerProcess: a transfer_test_peer child process (see test_peer_main.cc) for tests that
// need a target engine in another process: killed and stopped at will, started with its
// own limits (RLIMIT_NOFILE), measured from outside (/proc/<pid>).
//
//   PeerProcess peer("127.0.0.1:0", 64 << 20, {"params=tcp_idle_timeout_s=1"});
//   engine->OpenSegment(peer.name());
//   std::string counters = peer.Command("counters");   // "COUNTERS inbound_rejected=..."
//
// Needs FERRY_TEST_PEER (the peer binary's path) defined by the build. Killed (SIGKILL)
// and reaped on destruction. Thread-compatible.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace ferry::testing {

class PeerProcess {
 public:
  PeerProcess(const std::string& name, size_t bytes, const std::vector<std::string>& options = {}) {
    int out[2], in[2];
    EXPECT_EQ(::pipe(out), 0);
    EXPECT_EQ(::pipe(in), 0);
    std::string b = std::to_string(bytes);
    std::vector<char*> argv = {const_cast<char*>(FERRY_TEST_PEER), const_cast<char*>(name.c_str()),
                               b.data()};
    for (const std::string& o : options) argv.push_back(const_cast<char*>(o.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(in[0], 0);
      ::close(out[0]);
      ::close(in[1]);
      ::close(out[1]);
      ::close(in[0]);
      ::execv(FERRY_TEST_PEER, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    stdin_ = in[1];
    stdout_ = out[0];
    std::string line = ReadLine(std::chrono::seconds(10));
    std::istringstream is(line);
    std::string ready;
    is >> ready >> name_ >> addr_;
    EXPECT_EQ(ready, "READY") << "peer output: " << line;
  }
  ~PeerProcess() { Kill(); }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(stdin_);
    ::close(stdout_);
    pid_ = -1;
  }
  // Sends `sig`; for SIGSTOP returns only once every thread of the peer has stopped (a
  // plain kill() returns while its threads may still run for a moment).
  void Signal(int sig) {
    ::kill(pid_, sig);
    if (sig == SIGSTOP) {
      int status = 0;
      ::waitpid(pid_, &status, WUNTRACED);
    }
  }
  // True while the process has not exited (it did not abort or crash).
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  // Sends one command line and returns the reply line ("" after 10 s without one).
  std::string Command(const std::string& cmd) {
    std::string line = cmd + "\n";
    if (::write(stdin_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
    return ReadLine(std::chrono::seconds(10));
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
  // User + system CPU time the process has used.
  std::chrono::milliseconds CpuTime() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream is(stat.substr(stat.rfind(')') + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && is >> field; ++i) {  // fields 14 and 15: utime, stime
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    return std::chrono::milliseconds((utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK));
  }
  // Resident set size in bytes.
  uint64_t RssBytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
  }
  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  uint64_t addr() const { return addr_; }

 private:
  std::string ReadLine(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (buffered_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(stdout_, buf, sizeof(buf));
      if (n <= 0) break;
      buffered_.append(buf, static_cast<size_t>(n));
    }
    size_t nl = buffered_.find('\n');
    if (nl == std::string::npos) return std::exchange(buffered_, std::string());
    std::string line = buffered_.substr(0, nl);
    buffered_.erase(0, nl + 1);
    return line;
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string buffered_;
  std::string name_;
  uint64_t addr_ = 0;
};

}  // namespace ferry::testing
