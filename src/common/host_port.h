// "host:port" names, as used for segment names, peers and listen addresses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

struct HostPort {
  std::string host;  // IPv4 address, hostname, or IPv6 address without brackets.
  uint16_t port = 0;

  // "host:port", with brackets around IPv6 hosts.
  std::string ToString() const;
};

// Parses "host:port", "[v6]:port". The port must be 0..65535 and is required unless
// `default_port` >= 0, in which case "host" alone is accepted. Errors: InvalidArgument
// naming the offending text.
Result<HostPort> ParseHostPort(std::string_view text, int default_port = -1);

// The first non-loopback IPv4 address of this host's interfaces, or "127.0.0.1" when it
// has none: what a server bound to 0.0.0.0 tells peers to dial.
std::string LocalIpv4Address();

}  // namespace ferry
