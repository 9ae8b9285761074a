// `ferry`: one CLI with subcommands (`ferry --help` lists them). Each subcommand lives in
// its own *_command.cc and registers itself (see command.h).
#include <sys/resource.h>

#include "command.h"

int main(int argc, char** argv) {
  // Servers cap their connections themselves (docs/http_server.md, the tcp transport's
  // caps); the common soft limit of 1024 descriptors would refuse far below those caps.
  // At most 65536: a huge limit makes "close every descriptor" loops in libraries slow.
  constexpr rlim_t kWanted = 65536;
  rlimit fds{};
  if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < kWanted) {
    fds.rlim_cur = fds.rlim_max < kWanted ? fds.rlim_max : kWanted;
    setrlimit(RLIMIT_NOFILE, &fds);
  }
  return ferry::cli::RunMain(argc, argv);
}
