// Wire format of the tcp transport and the P2P handshake (one protocol on the RPC port).
//
// Every message is a fixed 40-byte little-endian FrameHeader followed by `length` payload
// bytes. A connection starts with HELLO (payload: the shared secret); the server answers
// with a REPLY whose status is OK or PERMISSION_DENIED and closes on mismatch. After that
// the initiator sends requests and the target answers each with exactly one REPLY, in
// order, carrying the request's id:
//
//   type            request payload              reply payload
//   HELLO           secret                       error text (if refused)
//   GET_DESCRIPTOR  -                            descriptor JSON
//   NOTIFY          from (aux bytes) + message   error text (if any)
//   WRITE           `length` data bytes          error text (if any)
//   READ            - (length = bytes wanted)    data (status OK) or error text
//
// Anything malformed (bad magic/version/type, a control payload over kMaxControlPayload,
// a data length over kMaxDataPayload, a truncated frame) closes the connection.
//
//   FrameHeader h{.type = FrameType::kWrite, .request_id = 7, .remote_addr = a, .length = n};
//   char buf[kFrameHeaderSize];
//   EncodeFrameHeader(h, buf);
//   FERRY_ASSIGN_OR_RETURN(FrameHeader back, DecodeFrameHeader(buf));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ferry/status.h"

namespace ferry::transfer::tcp {

inline constexpr uint32_t kFrameMagic = 0x31595246;  // "FRY1" little-endian
inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderSize = 40;
// Largest payload of HELLO / GET_DESCRIPTOR / NOTIFY / error replies.
inline constexpr uint64_t kMaxControlPayload = 16ull << 20;
// Largest payload of one WRITE frame or READ reply.
inline constexpr uint64_t kMaxDataPayload = 1ull << 30;
// Longest accepted secret.
inline constexpr uint64_t kMaxSecret = 4096;

enum class FrameType : uint8_t {
  kHello = 1,
  kGetDescriptor = 2,
  kNotify = 3,
  kWrite = 4,
  kRead = 5,
  kReply = 6,
};

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint8_t version = kWireVersion;
  FrameType type = FrameType::kReply;
  uint16_t flags = 0;
  uint64_t request_id = 0;
  uint64_t remote_addr = 0;  // WRITE/READ: target address.
  uint64_t length = 0;       // Payload bytes following the header.
  int32_t status = 0;        // REPLY: a StatusCode.
  uint32_t aux = 0;          // NOTIFY: length of `from`; REPLY to READ: 1 if data follows.
};

// Writes exactly kFrameHeaderSize bytes.
void EncodeFrameHeader(const FrameHeader& h, char* out);

// Parses and validates a header: magic, version, known type, payload length within the
// limit for its type. Errors: InvalidArgument naming what is wrong.
Result<FrameHeader> DecodeFrameHeader(const char* in);

// Compares two secrets in time independent of where they differ.
bool SecretsEqual(std::string_view a, std::string_view b);

std::string_view FrameTypeName(FrameType t);

}  // namespace ferry::transfer::tcp
