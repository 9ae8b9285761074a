// Helpers that bound one cpp-httplib client call by a Deadline and turn its failures
// into Ferry Status codes. Shared by the HTTP and etcd metadata stores; not a public API.
//
//   httplib::Client client(host, port);
//   ApplyDeadline(client, deadline);
//   auto res = client.Get(path);
//   if (!res) return StatusFromHttpError(res.error(), deadline, "GET " + path);
//
// cpp-httplib applies its read/write timeouts per socket operation, not per request, so
// callers that read a body pass DeadlineProgress() to cancel a reply that trickles in.
// Thread-safe (no shared state).
#pragma once

#include <httplib.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/deadline.h"
#include "ferry/status.h"

namespace ferry::metadata::internal {

// Sets connect, read and write timeouts to the time left before `deadline` (rounded up to
// a whole millisecond; 24 hours for an infinite deadline). The connect timeout is further
// capped by `connect_cap`, so that a caller with several endpoints can leave time for the
// next one.
void ApplyDeadline(httplib::Client& client, Deadline deadline,
                   std::chrono::nanoseconds connect_cap = std::chrono::nanoseconds::max());

// A progress callback that cancels the transfer once `deadline` has passed.
inline httplib::Progress DeadlineProgress(Deadline deadline) {
  return [deadline](uint64_t, uint64_t) { return !deadline.Expired(); };
}

// True when `deadline` has passed or is about to (within the timer slack of poll(2)).
bool NearlyExpired(Deadline deadline);

// True for failures where nothing reached the server (refused, unreachable, connect
// timeout): safe to retry the same request on another endpoint.
bool IsConnectFailure(httplib::Error error);

// Maps a failed call to DeadlineExceeded (the deadline passed), or Unavailable (refused,
// reset, closed). `what` names the request, e.g. "GET http://127.0.0.1:8080/metadata".
Status StatusFromHttpError(httplib::Error error, Deadline deadline, std::string_view what);

// Percent-encodes everything except RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~),
// byte by byte, so UTF-8 keys and keys with '/', ':', '&', '+', ' ' survive a query string.
std::string PercentEncode(std::string_view text);

}  // namespace ferry::metadata::internal
