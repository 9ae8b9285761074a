// ChildProcess: a program started by this process, with its output in a log file, that
// is stopped (SIGTERM, then SIGKILL after a grace period) when the object goes away.
//
// Example:
//   std::string dir = "/models/tiny";
//   FERRY_ASSIGN_OR_RETURN(auto p, ChildProcess::Spawn({"/proc/self/exe", "serve", dir},
//                                                      "/tmp/serve.log", {{"K", "V"}}));
//   bool running = p->Running();
//   int exit_status = p->Stop(std::chrono::seconds(5));
//
// Thread-compatible: one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferry/status.h"

namespace ferry {

class ChildProcess {
 public:
  // Starts argv[0] with argv (searched in PATH when it has no '/'), stdout and stderr
  // appended to `log_path`, and `env` added to this process's environment.
  // Errors: InvalidArgument (empty argv), Internal (fork/exec failed: the log says why).
  static Result<std::unique_ptr<ChildProcess>> Spawn(
      const std::vector<std::string>& argv, const std::string& log_path,
      const std::vector<std::pair<std::string, std::string>>& env = {});
  ~ChildProcess();  // Stop(5 s) if still running

  pid_t pid() const { return pid_; }
  // False once the process exited (reaps it).
  bool Running();
  // SIGTERM, wait up to `grace`, then SIGKILL and reap. Returns the exit status as
  // waitpid reports it (or -1 if it was already reaped).
  int Stop(std::chrono::milliseconds grace);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
  int status_ = -1;
};

}  // namespace ferry
