#include "transfer/tcp/wire.h"

#include <bit>
#include <cstring>
#include <string>

#include "common/crypto.h"

namespace ferry::transfer::tcp {
namespace {

static_assert(std::endian::native == std::endian::little,
              "wire encoding assumes a little-endian host; add byte swaps to port");
static_assert(kHelloProofBytes == crypto::kMacBytes, "a HELLO proof is one HMAC-SHA256 tag");

template <typename T>
void Put(char*& p, T v) {
  std::memcpy(p, &v, sizeof(v));
  p += sizeof(v);
}
template <typename T>
T Get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  p += sizeof(v);
  return v;
}

}  // namespace

void EncodeFrameHeader(const FrameHeader& h, char* out) {
  char* p = out;
  Put<uint32_t>(p, h.magic);
  Put<uint8_t>(p, h.version);
  Put<uint8_t>(p, static_cast<uint8_t>(h.type));
  Put<uint16_t>(p, h.flags);
  Put<uint64_t>(p, h.request_id);
  Put<uint64_t>(p, h.remote_addr);
  Put<uint64_t>(p, h.length);
  Put<int32_t>(p, h.status);
  Put<uint32_t>(p, h.aux);
}

Result<FrameHeader> DecodeFrameHeader(const char* in) {
  const char* p = in;
  FrameHeader h;
  h.magic = Get<uint32_t>(p);
  h.version = Get<uint8_t>(p);
  uint8_t type = Get<uint8_t>(p);
  h.flags = Get<uint16_t>(p);
  h.request_id = Get<uint64_t>(p);
  h.remote_addr = Get<uint64_t>(p);
  h.length = Get<uint64_t>(p);
  h.status = Get<int32_t>(p);
  h.aux = Get<uint32_t>(p);
  if (h.magic != kFrameMagic) {
    return InvalidArgumentError("bad frame magic (not a ferry peer?)");
  }
  if (h.version != kWireVersion) {
    return InvalidArgumentError("unsupported wire version " + std::to_string(h.version));
  }
  if (type < static_cast<uint8_t>(FrameType::kHello) ||
      type > static_cast<uint8_t>(FrameType::kHelloProof)) {
    return InvalidArgumentError("unknown frame type " + std::to_string(type));
  }
  h.type = static_cast<FrameType>(type);
  bool data = h.type == FrameType::kWrite || h.type == FrameType::kReply;
  uint64_t limit = data ? kMaxDataPayload : kMaxControlPayload;
  if (h.type == FrameType::kHello && h.length != kHelloNonceBytes) {
    return InvalidArgumentError("HELLO payload of " + std::to_string(h.length) +
                                " bytes; wire version 2 carries one " +
                                std::to_string(kHelloNonceBytes) + "-byte nonce");
  }
  if (h.type == FrameType::kHelloProof && h.length != kHelloProofBytes && h.length != 0) {
    return InvalidArgumentError("HELLO_PROOF payload of " + std::to_string(h.length) +
                                " bytes; want " + std::to_string(kHelloProofBytes) + " or 0");
  }
  if (h.type == FrameType::kRead) {
    // READ's length is the size wanted; no payload follows.
    if (h.length > kMaxDataPayload) {
      return InvalidArgumentError("READ length " + std::to_string(h.length) + " over limit");
    }
  } else if (h.type == FrameType::kGetDescriptor && h.length != 0) {
    return InvalidArgumentError("GET_DESCRIPTOR carries no payload");
  } else if (h.length > limit) {
    return InvalidArgumentError(std::string(FrameTypeName(h.type)) + " payload length " +
                                std::to_string(h.length) + " over limit " + std::to_string(limit));
  }
  if (h.type == FrameType::kNotify && h.aux > h.length) {
    return InvalidArgumentError("NOTIFY sender name longer than its payload");
  }
  return h;
}

namespace {

// HMAC(secret, len|domain | len|role | len|first | len|second), lengths as u32 LE.
std::string HelloProof(std::string_view secret, std::string_view role, std::string_view first,
                       std::string_view second) {
  static constexpr std::string_view kDomain = "ferry tcp HELLO v2";
  std::string msg;
  msg.reserve(64 + first.size() + second.size());
  for (std::string_view part : {kDomain, role, first, second}) {
    uint32_t n = static_cast<uint32_t>(part.size());
    char len[sizeof(n)];
    std::memcpy(len, &n, sizeof(n));
    msg.append(len, sizeof(len));
    msg.append(part);
  }
  return crypto::HmacSha256(secret, msg);
}

}  // namespace

std::string HelloServerProof(std::string_view secret, std::string_view client_nonce,
                             std::string_view server_nonce) {
  return HelloProof(secret, "server", client_nonce, server_nonce);
}

std::string HelloClientProof(std::string_view secret, std::string_view server_nonce,
                             std::string_view client_nonce) {
  return HelloProof(secret, "client", server_nonce, client_nonce);
}

std::string_view FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kGetDescriptor:
      return "GET_DESCRIPTOR";
    case FrameType::kNotify:
      return "NOTIFY";
    case FrameType::kWrite:
      return "WRITE";
    case FrameType::kRead:
      return "READ";
    case FrameType::kReply:
      return "REPLY";
    case FrameType::kHelloProof:
      return "HELLO_PROOF";
  }
  return "UNKNOWN";
}

}  // namespace ferry::transfer::tcp
