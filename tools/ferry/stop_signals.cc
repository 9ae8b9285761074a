#include "stop_signals.h"

#include <pthread.h>
#include <time.h>

namespace ferry::cli {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStopSignal(const sigset_t& signals) {
  timespec tick{1, 0};
  while (true) {
    int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig > 0) return sig;  // EAGAIN (tick passed) and EINTR: wait again
  }
}

}  // namespace ferry::cli
