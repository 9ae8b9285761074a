// TcpServerOptions: the limits and timeouts of the tcp transport's server side, read from
// TransportOptions::extra ("key=value" pairs of TransferEngineOptions::transport_params).
//
//   // transport_params = "tcp_server_threads=4,tcp_idle_timeout_s=120"
//   FERRY_ASSIGN_OR_RETURN(TcpServerOptions o, TcpServerOptions::FromExtra(options.extra));
//
// Keys not named below are left to other transports. Value type; thread-compatible.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "ferry/status.h"

namespace ferry::transfer::tcp {

struct TcpServerOptions {
  // I/O threads, each running an epoll loop over its share of the connections
  // ("tcp_server_threads", 1..16). One more thread accepts. Default: 2.
  int io_threads = 2;
  // Connections served at once, all peers together ("tcp_max_connections"); more are
  // accepted and closed at once. Default: 1024.
  int max_connections = 1024;
  // Connections served at once from one remote IP address
  // ("tcp_max_connections_per_peer"). Default: 256.
  int max_connections_per_peer = 256;
  // A greeted connection with no frame in progress for this long is closed
  // ("tcp_idle_timeout_s"). Default: 600 s.
  std::chrono::milliseconds idle_timeout{600'000};
  // The HELLO exchange must complete this long after accept ("tcp_hello_timeout_s").
  // Default: 5 s.
  std::chrono::milliseconds hello_timeout{5'000};
  // A frame that has started arriving, or a reply that has started going out, must
  // complete within this time, or the connection is closed ("tcp_frame_timeout_s"; a
  // peer trickling bytes cannot hold a connection longer). Default: 60 s.
  std::chrono::milliseconds frame_timeout{60'000};

  // Reads the keys above from `extra` (timeouts in seconds, fractions allowed).
  // Errors: InvalidArgument naming the key, its value and the accepted range.
  static Result<TcpServerOptions> FromExtra(
      const std::vector<std::pair<std::string, std::string>>& extra);
};

}  // namespace ferry::transfer::tcp
