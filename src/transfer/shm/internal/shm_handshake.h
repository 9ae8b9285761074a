// The same-host handshake of the shm transport: how an initiator learns, from the kernel
// and not from anyone's word, which process it is about to read or write with
// cross-memory attach, and which of that process's buffers it may touch.
//
// Every engine with shm serves a Unix socket under SocketDirectory() (/tmp/ferry-<uid>/,
// mode 0700, so only processes of the same user reach it) and names it in its segment
// descriptor (transport_info["shm"]). An initiator connects and:
//   1. I -> T  {"type":"hello","nonce":Ni}
//   2. T -> I  {"type":"challenge","nonce":Nt,"mac":TargetMac(Ni, Nt, pid_T)}
//   3. I -> T  {"type":"proof","mac":InitiatorMac(Nt, Ni, pid_I)}
//   4. T -> I  {"type":"descriptor","descriptor":<segment descriptor JSON>} (or
//              {"type":"refused","error":...})
// Both sides take the other's pid from SO_PEERCRED, never from a message, and put it in the
// MACs: the initiator then copies only into the process the kernel says it is talking to,
// only within the buffers that process itself listed. The connection stays open: the
// target pushes a new "descriptor" message whenever its registrations change, and the
// initiator sends {"type":"refresh"} to ask for one. Messages are frames of a 4-byte
// little-endian length and a JSON payload of at most kMaxFrame bytes.
//
// Shared memory: a "descriptor" message may list "shared":[{"addr":..,"len":..}], buffers
// of the target that are sealed memfds (memory the shm transport allocated); the frame is
// then followed by one byte carrying their file descriptors (SCM_RIGHTS), in that order.
// The initiator maps them and copies into those buffers with memcpy instead of
// cross-memory attach.
//
// MACs are HMAC-SHA256 under the deployment secret (empty without one: then the exchange
// still proves the peer's pid, but not that it belongs to the deployment).
//
// Thread safety: the functions are reentrant; each fd is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "ferry/status.h"

namespace ferry::transfer::shm::internal {

inline constexpr size_t kMaxFrame = 4u << 20;
// At most this many file descriptors follow one descriptor message.
inline constexpr size_t kMaxSharedFds = 64;

// Writes one frame. Errors: Unavailable (peer gone), DeadlineExceeded.
Status SendFrame(int fd, std::string_view payload, Deadline deadline);
// Reads one frame. Errors: Unavailable (EOF, reset), DeadlineExceeded, InvalidArgument
// (a length over kMaxFrame).
Result<std::string> RecvFrame(int fd, Deadline deadline);

// Sends one byte carrying `fds` (1..kMaxSharedFds) as SCM_RIGHTS. Errors: as SendFrame,
// InvalidArgument for a bad count.
Status SendFds(int fd, std::span<const int> fds, Deadline deadline);
// Receives the byte of SendFds and exactly `count` descriptors (close-on-exec). Errors:
// as RecvFrame; InvalidArgument when another byte, fewer or more descriptors arrive (those
// that did are closed).
Result<std::vector<UniqueFd>> RecvFds(int fd, size_t count, Deadline deadline);

// The pid of the process at the other end of a connected Unix socket (SO_PEERCRED).
// Errors: Internal.
Result<pid_t> PeerPid(int fd);

std::string TargetMac(std::string_view secret, std::string_view initiator_nonce,
                      std::string_view target_nonce, int64_t target_pid);
std::string InitiatorMac(std::string_view secret, std::string_view target_nonce,
                         std::string_view initiator_nonce, int64_t initiator_pid);

// /tmp/ferry-<uid>, created with mode 0700 if absent. Errors: PermissionDenied if it exists
// but is not a directory owned by this user with no access for others (or is a link).
Result<std::string> SocketDirectory();

// Whether `path` names a socket this user's engines serve: a file directly in
// SocketDirectory() named <digits>-<hex>.sock. Anything else is never connected to.
bool IsEngineSocketPath(std::string_view path);

// Connects to the Unix socket at `path` (non-blocking, close-on-exec).
// Errors: Unavailable (refused, absent), DeadlineExceeded.
Result<UniqueFd> ConnectUnix(const std::string& path, Deadline deadline);

}  // namespace ferry::transfer::shm::internal
