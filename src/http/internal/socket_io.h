// Socket primitives shared by HttpServer's loop and workers. Sockets are non-blocking;
// SendAll waits for POLLOUT itself, so a worker's write is bounded by its deadline.
//
//   std::string_view parts[] = {head, body};
//   if (!internal::SendAll(fd, parts, Deadline::In(write_timeout))) { /* close it */ }
//
// Thread safety: plain functions on a file descriptor; the caller owns the descriptor.
#pragma once

#include <span>
#include <string_view>

#include "common/deadline.h"

namespace ferry::http::internal {

// Writes every byte of `parts` (gathered, MSG_NOSIGNAL). False when the peer is gone, an
// error occurs, or `deadline` passes first (the client stopped reading).
bool SendAll(int fd, std::span<const std::string_view> parts, Deadline deadline);

// One non-blocking send. Returns the bytes written (0 when the socket buffer is full),
// or -1 on an error (peer gone).
long SendSome(int fd, std::string_view data);

// True once the peer has closed or reset its side (POLLRDHUP, POLLHUP or POLLERR), even
// with unread bytes still buffered. Never blocks.
bool PeerClosed(int fd);

// Reads and drops whatever is readable right now (at most `limit` bytes), so that a close
// that follows sends FIN rather than RST.
void DiscardReadable(int fd, size_t limit);

}  // namespace ferry::http::internal
