// Segment descriptors: what a transfer engine publishes about itself so that peers can
// reach its registered memory. Carried by the P2P handshake or stored in the metadata
// service (HTTP key-value or etcd) as JSON.
//
//   {"name":"10.0.0.2:17000","host":"10.0.0.2","rpc_port":17000,"pid":4242,
//    "host_id":"<boot id>","transports":["tcp","shm"],"version":3,
//    "transport_info":{"shm":"/tmp/ferry-1000/4242-0011223344556677.sock"},
//    "buffers":[{"addr":140230000000000,"length":1048576,"location":"cpu","remote":true}]}
//
// A descriptor is what a peer says about itself: transports check what they act on (the
// tcp target checks every range against its own registry; shm asks the process itself,
// see shm_session.h) rather than trusting it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

struct BufferDescriptor {
  uint64_t addr = 0;
  uint64_t length = 0;
  std::string location = "cpu";
  bool remote_accessible = true;

  bool Contains(uint64_t a, uint64_t len) const {
    return a >= addr && len <= length && a - addr <= length - len;
  }
};

struct SegmentDescriptor {
  std::string name;       // "host:port", the key peers look it up by.
  std::string host;       // Address peers connect to.
  uint16_t rpc_port = 0;  // RPC (handshake, notify, tcp data) port.
  int64_t pid = 0;        // Process id, for same-host transports.
  std::string host_id;    // Identifies the machine (kernel boot id); equal => same host.
  std::vector<std::string> transports;  // Transports the segment serves.
  // Per-transport connection details (e.g. "shm": the session socket's path).
  std::map<std::string, std::string> transport_info;
  uint64_t version = 0;                   // Bumped on every (un)registration.
  std::vector<BufferDescriptor> buffers;  // Sorted by addr, non-overlapping.

  // The remote-accessible buffer holding [addr, addr + len), or nullptr.
  const BufferDescriptor* FindBuffer(uint64_t addr, uint64_t len) const;

  std::string ToJson() const;
  // Errors: InvalidArgument naming the field that is missing or malformed, or for a
  // document over 16 MiB or nested deeper than JSON limits allow.
  static Result<SegmentDescriptor> FromJson(const std::string& json);
};

}  // namespace ferry
