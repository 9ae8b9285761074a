#include "transfer/shm/cma_copy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace ferry::transfer::shm {
namespace {

std::string Describe(pid_t pid, TransferOp op, uint64_t remote, size_t length) {
  return fmt::format("{} with pid {} at {:#x} ({} bytes)",
                     op == TransferOp::kWrite ? "process_vm_writev" : "process_vm_readv", pid,
                     remote, length);
}

Status ErrnoToCmaStatus(int err, pid_t pid, TransferOp op, uint64_t remote, size_t length) {
  std::string what = Describe(pid, op, remote, length);
  switch (err) {
    case EPERM:
    case EACCES:
    case ENOSYS:
      return UnimplementedError(what + " refused by the kernel (" + std::strerror(err) +
                                "): the peer must allow ptrace attach (same user, "
                                "PR_SET_PTRACER or ptrace_scope 0) or use tcp");
    case ESRCH:
      return UnavailableError(what + ": peer process is gone");
    case EFAULT:
      return OutOfRangeError(what +
                             ": part of the range is not mapped in one of the "
                             "processes");
    case ENOMEM:
      return ResourceExhaustedError(what + ": out of memory");
    default:
      return InternalError(what + ": " + std::strerror(err));
  }
}

}  // namespace

CmaCalls RealCmaCalls() { return CmaCalls{&::process_vm_readv, &::process_vm_writev}; }

Status CmaCopy(const CmaCalls& calls, pid_t pid, TransferOp op, char* local, uint64_t remote,
               size_t length, Deadline deadline) {
  CmaFn fn = op == TransferOp::kWrite ? calls.write : calls.read;
  size_t done = 0;
  while (done < length) {
    if (done > 0 && deadline.Expired()) {
      return DeadlineExceededError(Describe(pid, op, remote, length) + ": deadline passed after " +
                                   std::to_string(done) + " bytes");
    }
    size_t piece = std::min(length - done, kCmaPieceBytes);
    struct iovec l {
      local + done, piece
    };
    struct iovec r {
      reinterpret_cast<void*>(static_cast<uintptr_t>(remote + done)), piece
    };
    ssize_t n = fn(pid, &l, 1, &r, 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToCmaStatus(errno, pid, op, remote + done, length - done);
    }
    if (n == 0) {
      return OutOfRangeError(Describe(pid, op, remote + done, length - done) +
                             ": the kernel copied nothing");
    }
    done += static_cast<size_t>(n);  // short copy: continue where it stopped
  }
  return OkStatus();
}

}  // namespace ferry::transfer::shm
