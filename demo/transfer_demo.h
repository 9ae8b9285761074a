// `ferry demo-transfer`: the transfer engine on its own. Starts a target process, then from
// this process writes the working set into it and reads it back over tcp and over shm,
// checks every byte by checksum, and prints what moved and how fast (~10 s for 1 GiB).
//
//   return ferry::demo::RunTransferDemo(64u << 20);  // prints "demo OK" on success
#pragma once

#include <cstdint>

namespace ferry::demo {

// Moves `bytes` (a multiple of 4 MiB) each way over tcp and shm; returns the exit code.
// Spawns the target as `/proc/self/exe bench transfer --role target`, so it runs inside
// the `ferry` binary.
int RunTransferDemo(uint64_t bytes);

}  // namespace ferry::demo
