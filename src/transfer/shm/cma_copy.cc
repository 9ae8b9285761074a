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

void CmaCopyV(const CmaCalls& calls, pid_t pid, TransferOp op, std::span<const CmaRange> ranges,
              Deadline deadline, const std::function<void(size_t, const Status&)>& done) {
  CmaFn fn = op == TransferOp::kWrite ? calls.write : calls.read;
  iovec l[kCmaMaxRanges], r[kCmaMaxRanges];
  size_t next = 0;  // first range not yet reported
  while (next < ranges.size()) {
    if (next > 0 && deadline.Expired()) {
      for (; next < ranges.size(); ++next) {
        done(next,
             DeadlineExceededError(Describe(pid, op, ranges[next].remote, ranges[next].length) +
                                   ": deadline passed before it started"));
      }
      return;
    }
    // Ranges [next, end) in one call, at most kCmaPieceBytes of them after the first.
    size_t end = next, bytes = 0, count = 0;
    while (end < ranges.size() && count < kCmaMaxRanges &&
           (count == 0 || bytes + ranges[end].length <= kCmaPieceBytes)) {
      const CmaRange& x = ranges[end++];
      if (x.length == 0) continue;
      l[count] = {x.local, x.length};
      r[count] = {reinterpret_cast<void*>(static_cast<uintptr_t>(x.remote)), x.length};
      bytes += x.length;
      ++count;
    }
    ssize_t n = count == 0 ? 0 : fn(pid, l, count, r, count, 0);
    if (n < 0 && errno == EINTR) continue;
    // Report the ranges the call copied whole. After a short copy the range it stopped in
    // is finished alone and the rest batched again; after a failed call each range of it
    // is copied alone, so that each is told its own error.
    size_t copied = n > 0 ? static_cast<size_t>(n) : 0;
    while (next < end) {
      const CmaRange& x = ranges[next];
      if (x.length <= copied) {
        copied -= x.length;
        done(next++, OkStatus());
        continue;
      }
      done(next++, CmaCopy(calls, pid, op, x.local + copied, x.remote + copied, x.length - copied,
                           deadline));
      if (n > 0) break;
      copied = 0;
    }
  }
}

}  // namespace ferry::transfer::shm
