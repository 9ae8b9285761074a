// Socket helpers for the tcp transport: listen, connect, and whole-buffer send/receive on
// non-blocking sockets, each bounded by a Deadline.
//
//   FERRY_ASSIGN_OR_RETURN(UniqueFd fd, ConnectTcp("127.0.0.1", 17000, deadline));
//   iovec iov[2] = {{hdr, 40}, {data, n}};
//   FERRY_RETURN_IF_ERROR(SendAllV(fd.get(), iov, 2, deadline));
//
// Errors: Unavailable (reset, EOF, refused), DeadlineExceeded, AlreadyExists (port taken),
// InvalidArgument (bad address). Thread-compatible: callers serialize use of one fd.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"

namespace ferry::transfer::tcp {

// Socket buffer size asked for on data connections.
inline constexpr int kSocketBufferBytes = 4 << 20;

// SO_RCVTIMEO / SO_SNDTIMEO of connected sockets: how often a blocked send/recv wakes up
// to re-check its deadline.
inline constexpr int kBlockingTimeoutMs = 20;

// Non-blocking, TCP_NODELAY, big buffers, close-on-exec.
Status TuneSocket(int fd);

// Switches a connected socket to blocking mode with SO_RCVTIMEO / SO_SNDTIMEO of
// `timeout_ms`: big sends and MSG_WAITALL receives then take one syscall, and the helpers
// below still honour their deadlines (they re-check after each timeout).
Status MakeBlocking(int fd, int timeout_ms);

// Binds and listens on host:port (port 0: any). Returns the listening fd and the port.
Result<UniqueFd> ListenTcp(const std::string& host, uint16_t port, uint16_t* bound_port);

// Connects (IPv4/IPv6/hostname) within the deadline; the socket comes back tuned and
// blocking (MakeBlocking(kBlockingTimeoutMs)).
Result<UniqueFd> ConnectTcp(const std::string& host, uint16_t port, Deadline deadline);

// Sends every byte of the iovecs (modified in place). MSG_NOSIGNAL.
Status SendAllV(int fd, iovec* iov, int iovcnt, Deadline deadline);
Status SendAll(int fd, const void* data, size_t len, Deadline deadline);

// Receives exactly `len` bytes into `buf`. EOF before that: Unavailable.
Status RecvAll(int fd, void* buf, size_t len, Deadline deadline);

// One non-blocking recv / recvmsg / sendmsg (MSG_DONTWAIT; sendmsg also MSG_NOSIGNAL), retried on
// EINTR: the bytes moved, 0 for EOF (receives only), or -1 with errno set (EAGAIN:
// nothing can move now). For event loops; they note the wire for TSAN like the helpers
// above.
ssize_t RecvSome(int fd, void* buf, size_t len);
ssize_t RecvSomeV(int fd, iovec* iov, int iovcnt);
ssize_t SendSomeV(int fd, const iovec* iov, int iovcnt);

// ThreadSanitizer cannot see that bytes sent on a socket order the sender's earlier memory
// accesses before the receiver's later ones (a peer's WRITE lands, the reply is read, a
// READ of the same bytes follows). Every send "releases" and every receive "acquires" one
// process-wide sync object so TSAN models that. No-ops in other builds.
void NoteWireSend();
void NoteWireRecv();

// Waits until fd is readable (or hung up) or the deadline passes; true if readable.
bool WaitReadable(int fd, Deadline deadline);

}  // namespace ferry::transfer::tcp
