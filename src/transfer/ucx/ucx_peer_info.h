// UcxPeerInfo: what a ucx transport publishes in SegmentDescriptor::transport_info["ucx"]
// so that peers can reach its memory with UCX RMA: its worker address and, for every
// registered buffer it mapped, the buffer's range and packed remote key. Compact JSON:
//
//   {"worker":"<hex of the ucp worker address>",
//    "buffers":[{"addr":140230000000000,"len":1048576,"rkey":"<hex of the packed rkey>"}]}
//
//   FERRY_ASSIGN_OR_RETURN(UcxPeerInfo info, UcxPeerInfo::Parse(peer.transport_info["ucx"]));
//   const UcxPeerInfo::Buffer* b = info.Find(remote, length);  // nullptr: not a ucx buffer
//
// Parse reads a peer's claim: sizes and counts are bounded, hex is validated, buffers must
// be sorted and must not overlap; anything else is InvalidArgument (never a crash).
//
// Thread safety: a value type; const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::transfer::ucx {

struct UcxPeerInfo {
  // Bounds on what Parse accepts.
  static constexpr size_t kMaxJsonBytes = 1u << 20;
  static constexpr size_t kMaxWorkerAddressBytes = 16u << 10;
  static constexpr size_t kMaxRkeyBytes = 4u << 10;
  static constexpr size_t kMaxBuffers = 4096;

  struct Buffer {
    uint64_t addr = 0;
    uint64_t length = 0;
    std::string rkey;  // packed remote key (raw bytes, as ucp_rkey_pack made them)

    bool Contains(uint64_t a, uint64_t len) const {
      return a >= addr && len <= length && a - addr <= length - len;
    }
  };

  std::string worker_address;   // raw bytes of the ucp worker address
  std::vector<Buffer> buffers;  // sorted by addr, non-overlapping

  // The buffer holding [addr, addr + len) entirely, or nullptr.
  const Buffer* Find(uint64_t addr, uint64_t len) const;

  std::string ToJson() const;
  // Errors: InvalidArgument naming what is malformed or over a bound.
  static Result<UcxPeerInfo> Parse(std::string_view json);
};

// The bytes of a hex string (crypto::HexDecode; InvalidArgument for odd length or a non-hex
// character). crypto::HexEncode is the inverse.
Result<std::string> FromHex(std::string_view hex);

}  // namespace ferry::transfer::ucx
