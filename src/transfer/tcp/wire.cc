#include "transfer/tcp/wire.h"

#include <bit>
#include <cstring>
#include <string>

namespace ferry::transfer::tcp {
namespace {

static_assert(std::endian::native == std::endian::little,
              "wire encoding assumes a little-endian host; add byte swaps to port");

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
      type > static_cast<uint8_t>(FrameType::kReply)) {
    return InvalidArgumentError("unknown frame type " + std::to_string(type));
  }
  h.type = static_cast<FrameType>(type);
  bool data = h.type == FrameType::kWrite || h.type == FrameType::kReply;
  uint64_t limit = data ? kMaxDataPayload : kMaxControlPayload;
  if (h.type == FrameType::kHello) limit = kMaxSecret;
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

bool SecretsEqual(std::string_view a, std::string_view b) {
  // Length leaks; contents do not.
  size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
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
  }
  return "UNKNOWN";
}

}  // namespace ferry::transfer::tcp
