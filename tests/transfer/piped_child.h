// PipedChild: a test program run as a child process, its stdin and stdout pipes to this
// process (one command line in, one reply line out), killed and stopped at will and
// measured from outside (/proc/<pid>). The base of PeerProcess and of the ucx test's peer.
//
//   PipedChild child({"/path/to/peer", "arg"});
//   std::string ready = child.ReadLine(std::chrono::seconds(10));  // "" on timeout
//   std::string reply = child.Command("counters");
//   child.Signal(SIGSTOP);  // returns once every thread of the child has stopped
//
// Killed (SIGKILL) and reaped on destruction. Thread-compatible.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace ferry::testing {

class PipedChild {
 public:
  // Starts argv[0] (a path) with argv; a failed fork or pipe is a test failure.
  explicit PipedChild(const std::vector<std::string>& argv) {
    int out[2], in[2];
    EXPECT_EQ(::pipe(out), 0);
    EXPECT_EQ(::pipe(in), 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    EXPECT_GE(pid_, 0) << "fork failed";
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(in[0], 0);
      ::close(out[0]);
      ::close(in[1]);
      ::close(out[1]);
      ::close(in[0]);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~PipedChild() {
    Kill();
    ::close(stdin_);
    ::close(stdout_);
  }
  PipedChild(const PipedChild&) = delete;
  PipedChild& operator=(const PipedChild&) = delete;

  // SIGKILL and reap; a no-op once done.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Sends `sig`; for SIGSTOP returns only once every thread of the child has stopped (a
  // plain kill() returns while its threads may still run for a moment).
  void Signal(int sig) {
    if (pid_ <= 0) return;
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
  // The next line the child printed, without its newline; what arrived so far (maybe "")
  // when no whole line came within `timeout` or the child closed its stdout.
  std::string ReadLine(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (buffered_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[65536];
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

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string buffered_;
};

}  // namespace ferry::testing
