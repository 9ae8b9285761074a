// Connection: one accepted socket and its per-connection state. Owned by exactly one
// thread at a time: the loop (reading a request, idle, or closing) or, from dispatch until
// it is handed back, the worker that runs its request.
#pragma once

#include <cstdint>
#include <string>

#include "common/deadline.h"
#include "common/unique_fd.h"
#include "http/http_response.h"
#include "http/request_parser.h"

namespace ferry::http::internal {

class ClientCounts;

enum class ConnectionPhase {
  kIdle,     // keep-alive, no byte of a next request yet (idle_timeout)
  kHeaders,  // reading the request line and headers (header_timeout)
  kBody,     // reading the body (body_timeout)
  kClosing,  // flushing `out`, then discarding input until EOF or the linger deadline
};

struct Connection {
  Connection(UniqueFd socket, uint32_t id, std::string ip, uint16_t peer_port,
             const HttpLimits& limits, ClientCounts* client_counts)
      : fd(std::move(socket)),
        serial(id),
        remote_addr(std::move(ip)),
        remote_port(peer_port),
        parser(limits),
        counts(client_counts) {}
  ~Connection();  // closes the socket and releases its slot in ClientCounts
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  UniqueFd fd;
  const uint32_t serial;  // tags epoll events, so a reused fd never gets a stale event
  const std::string remote_addr;
  const uint16_t remote_port;
  RequestParser parser;
  std::string in;   // bytes read and not yet parsed (a pipelined request may wait here)
  std::string out;  // bytes the loop still has to write (100 Continue, error responses)
  ConnectionPhase phase = ConnectionPhase::kHeaders;
  SteadyClock::time_point deadline;  // of the current phase
  const Handler* handler = nullptr;  // the route of the request being read
  int requests = 0;                  // requests dispatched on this connection
  size_t discarded = 0;              // bytes dropped while closing
  bool watching_output = false;      // registered for EPOLLOUT (closing with `out` left)

 private:
  ClientCounts* const counts;
};

}  // namespace ferry::http::internal
