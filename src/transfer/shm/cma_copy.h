// Cross-memory attach (CMA) copies: one slice between this process and another one on the
// same host, with process_vm_writev (WRITE: local -> remote) or process_vm_readv (READ).
//
//   Status s = shm::CmaCopy(shm::RealCmaCalls(), peer_pid, TransferOp::kWrite, src,
//                           remote_addr, len, deadline);
//   shm::CmaCopyV(calls, peer_pid, TransferOp::kWrite, ranges, deadline,
//                 [&](size_t i, const Status& s) { ... });   // many ranges, few syscalls
//
// The syscalls are reached through CmaCalls so that tests can inject short copies and
// errors. Thread safety: CmaCopy and CmaCopyV are reentrant; they keep no state.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "common/deadline.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"

namespace ferry::transfer::shm {

// Signature of process_vm_readv / process_vm_writev.
using CmaFn = ssize_t (*)(pid_t pid, const struct iovec* local, unsigned long liovcnt,
                          const struct iovec* remote, unsigned long riovcnt, unsigned long flags);

struct CmaCalls {
  CmaFn read = nullptr;   // remote -> local
  CmaFn write = nullptr;  // local -> remote
};

// The kernel's process_vm_readv / process_vm_writev.
CmaCalls RealCmaCalls();

// Largest piece handed to one syscall; the deadline is checked between pieces, so a slice
// overruns its deadline by at most one piece (about a millisecond).
inline constexpr size_t kCmaPieceBytes = 4u << 20;

// Copies `length` bytes between `local` (this process) and `remote` (an address in `pid`).
// Short copies (the syscall moved fewer bytes than asked) are continued where they
// stopped; EINTR is retried. Returns OK when every byte was copied, else:
//   Unimplemented     the kernel refuses CMA to `pid` (EPERM, EACCES, ENOSYS): the caller
//                     should fall back to another transport;
//   Unavailable       `pid` does not exist (ESRCH);
//   OutOfRange        part of either range is not mapped (EFAULT) or the kernel copied
//                     nothing;
//   ResourceExhausted ENOMEM;
//   DeadlineExceeded  `deadline` passed between pieces;
//   Internal          any other errno.
// Bytes before the failing point may already have been copied.
Status CmaCopy(const CmaCalls& calls, pid_t pid, TransferOp op, char* local, uint64_t remote,
               size_t length, Deadline deadline);

// Ranges one CmaCopyV syscall takes at most (the kernel's IOV_MAX).
inline constexpr size_t kCmaMaxRanges = 1024;

// One range of a CmaCopyV call.
struct CmaRange {
  char* local = nullptr;
  uint64_t remote = 0;
  size_t length = 0;
};

// Copies every range (all in direction `op`), up to kCmaMaxRanges per syscall, and calls
// done(i, status) once for each range i, in order, as soon as it is known: OK when all of
// its bytes were copied. When a syscall fails the ranges it covered are copied again one
// by one (CmaCopy) so that each gets its own status (errors as CmaCopy). Ranges after a
// passed deadline fail with DeadlineExceeded without being tried.
void CmaCopyV(const CmaCalls& calls, pid_t pid, TransferOp op, std::span<const CmaRange> ranges,
              Deadline deadline, const std::function<void(size_t, const Status&)>& done);

}  // namespace ferry::transfer::shm
