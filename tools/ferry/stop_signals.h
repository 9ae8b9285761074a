// SIGINT/SIGTERM handling shared by the long-running commands (master, metadata-server,
// proxy): the signals are blocked in every thread and taken synchronously by the caller.
//
//   sigset_t stop = ferry::cli::BlockStopSignals();  // before any thread starts
//   ... start servers ...
//   int sig = ferry::cli::WaitForStopSignal(stop);
#pragma once

#include <signal.h>

namespace ferry::cli {

// Blocks SIGINT and SIGTERM in the calling thread (threads started later inherit the
// mask) and returns that set.
sigset_t BlockStopSignals();

// Waits until one of `signals` arrives and returns it (EINTR and timeouts wait again).
int WaitForStopSignal(const sigset_t& signals);

}  // namespace ferry::cli
