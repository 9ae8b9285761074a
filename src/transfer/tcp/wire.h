// Wire format of the tcp transport and the P2P handshake (one protocol on the RPC port).
//
// Every message is a fixed 40-byte little-endian FrameHeader followed by `length` payload
// bytes. A connection starts with a mutual challenge-response under the shared secret
// (HMAC-SHA256; an empty key when no secret is set), so the secret never goes on the wire
// and each side proves to the other that it knows it:
//
//   client -> HELLO        client nonce Nc (kHelloNonceBytes random bytes)
//   server -> REPLY        server nonce Ns + HelloServerProof(secret, Nc, Ns)
//   client    checks the server's proof; on mismatch it sends HELLO_PROOF with no payload
//             and status PERMISSION_DENIED and gives up (a fake server learns nothing)
//   client -> HELLO_PROOF  HelloClientProof(secret, Ns, Nc)
//   server -> REPLY        OK, or PERMISSION_DENIED (then closes)
//
// The server accepts no other frame before a valid HELLO_PROOF. After that the initiator
// sends requests and the target answers each with exactly one REPLY, in order, carrying
// the request's id:
//
//   type            request payload              reply payload
//   HELLO           client nonce                 server nonce + server proof
//   HELLO_PROOF     client proof                 error text (if refused)
//   GET_DESCRIPTOR  -                            descriptor JSON
//   NOTIFY          from (aux bytes) + message   error text (if any)
//   WRITE           `length` data bytes          error text (if any)
//   READ            - (length = bytes wanted)    data (status OK) or error text
//
// Anything malformed (bad magic/version/type, a HELLO payload that is not one nonce, a
// control payload over kMaxControlPayload, a data length over kMaxDataPayload, a
// truncated frame) closes the connection.
//
//   FrameHeader h{.type = FrameType::kWrite, .request_id = 7, .remote_addr = a, .length = n};
//   char buf[kFrameHeaderSize];
//   EncodeFrameHeader(h, buf);
//   FERRY_ASSIGN_OR_RETURN(FrameHeader back, DecodeFrameHeader(buf));
//
// Thread safety: every function is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::transfer::tcp {

inline constexpr uint32_t kFrameMagic = 0x31595246;  // "FRY1" little-endian
// 2: HELLO became a challenge-response (version 1 sent the secret itself).
inline constexpr uint8_t kWireVersion = 2;
inline constexpr size_t kFrameHeaderSize = 40;
// Largest payload of HELLO / GET_DESCRIPTOR / NOTIFY / error replies.
inline constexpr uint64_t kMaxControlPayload = 16ull << 20;
// Largest payload of one WRITE frame or READ reply.
inline constexpr uint64_t kMaxDataPayload = 1ull << 30;
// Bytes of each side's HELLO nonce and of each HELLO proof (an HMAC-SHA256 tag).
inline constexpr size_t kHelloNonceBytes = 32;
inline constexpr size_t kHelloProofBytes = 32;

enum class FrameType : uint8_t {
  kHello = 1,
  kGetDescriptor = 2,
  kNotify = 3,
  kWrite = 4,
  kRead = 5,
  kReply = 6,
  kHelloProof = 7,
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

// The HELLO proofs: HMAC-SHA256 under `secret` of a domain-separation string, the
// prover's role ("server" / "client") and both nonces (the verifier's first), each part
// prefixed with its length, so that neither side's proof can be replayed as the other's or
// on another connection. kHelloProofBytes raw bytes.
std::string HelloServerProof(std::string_view secret, std::string_view client_nonce,
                             std::string_view server_nonce);
std::string HelloClientProof(std::string_view secret, std::string_view server_nonce,
                             std::string_view client_nonce);

std::string_view FrameTypeName(FrameType t);

}  // namespace ferry::transfer::tcp
