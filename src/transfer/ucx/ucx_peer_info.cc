#include "transfer/ucx/ucx_peer_info.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/json_limits.h"

namespace ferry::transfer::ucx {
namespace {

// The unsigned integer at j[key], or an error naming it.
Result<uint64_t> GetUnsigned(const nlohmann::json& j, const char* key, size_t index) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) {
    return InvalidArgumentError(
        fmt::format("ucx info: buffers[{}].{} is missing or not an unsigned integer", index, key));
  }
  return it->get<uint64_t>();
}

// The hex string at j[key] decoded, at most max_bytes long.
Result<std::string> GetHex(const nlohmann::json& j, const char* key, size_t max_bytes,
                           const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return InvalidArgumentError("ucx info: " + what + " is missing or not a string");
  }
  const std::string& hex = it->get_ref<const std::string&>();
  if (hex.empty() || hex.size() > 2 * max_bytes) {
    return InvalidArgumentError(fmt::format(
        "ucx info: {} must be 1..{} bytes of hex, got {} characters", what, max_bytes, hex.size()));
  }
  auto bytes = FromHex(hex);
  if (!bytes.ok()) return bytes.status().WithContext("ucx info: " + what);
  return bytes;
}

}  // namespace

Result<std::string> FromHex(std::string_view hex) {
  std::string out;
  if (!crypto::HexDecode(hex, &out)) {
    return InvalidArgumentError("not an even number of hex digits");
  }
  return out;
}

const UcxPeerInfo::Buffer* UcxPeerInfo::Find(uint64_t addr, uint64_t len) const {
  // The last buffer starting at or before addr is the only candidate (sorted, disjoint).
  auto it = std::upper_bound(buffers.begin(), buffers.end(), addr,
                             [](uint64_t a, const Buffer& b) { return a < b.addr; });
  if (it == buffers.begin()) return nullptr;
  --it;
  return it->Contains(addr, len) ? &*it : nullptr;
}

std::string UcxPeerInfo::ToJson() const {
  nlohmann::json j;
  j["worker"] = crypto::HexEncode(worker_address);
  nlohmann::json list = nlohmann::json::array();
  for (const Buffer& b : buffers) {
    list.push_back({{"addr", b.addr}, {"len", b.length}, {"rkey", crypto::HexEncode(b.rkey)}});
  }
  j["buffers"] = std::move(list);
  return j.dump();
}

Result<UcxPeerInfo> UcxPeerInfo::Parse(std::string_view json) {
  if (json.size() > kMaxJsonBytes) {
    return InvalidArgumentError(
        fmt::format("ucx info is {} bytes, more than the {} allowed", json.size(), kMaxJsonBytes));
  }
  auto parsed = ParseJson(json, {.max_bytes = kMaxJsonBytes, .max_depth = 4});
  if (!parsed.ok()) return parsed.status().WithContext("ucx info");
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return InvalidArgumentError("ucx info is not a JSON object");
  UcxPeerInfo info;
  FERRY_ASSIGN_OR_RETURN(info.worker_address,
                         GetHex(j, "worker", kMaxWorkerAddressBytes, "worker address"));
  auto list = j.find("buffers");
  if (list == j.end() || !list->is_array()) {
    return InvalidArgumentError("ucx info: buffers is missing or not an array");
  }
  if (list->size() > kMaxBuffers) {
    return InvalidArgumentError(fmt::format("ucx info lists {} buffers, more than the {} allowed",
                                            list->size(), kMaxBuffers));
  }
  info.buffers.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& e = (*list)[i];
    if (!e.is_object()) {
      return InvalidArgumentError(fmt::format("ucx info: buffers[{}] is not an object", i));
    }
    Buffer b;
    FERRY_ASSIGN_OR_RETURN(b.addr, GetUnsigned(e, "addr", i));
    FERRY_ASSIGN_OR_RETURN(b.length, GetUnsigned(e, "len", i));
    FERRY_ASSIGN_OR_RETURN(b.rkey,
                           GetHex(e, "rkey", kMaxRkeyBytes, fmt::format("buffers[{}].rkey", i)));
    if (b.length == 0 || b.addr + b.length < b.addr) {
      return InvalidArgumentError(
          fmt::format("ucx info: buffers[{}] has an empty or wrapping range", i));
    }
    if (!info.buffers.empty()) {
      const Buffer& prev = info.buffers.back();
      if (b.addr < prev.addr + prev.length) {
        return InvalidArgumentError(fmt::format(
            "ucx info: buffers[{}] is not sorted after, or overlaps, the one before", i));
      }
    }
    info.buffers.push_back(std::move(b));
  }
  return info;
}

}  // namespace ferry::transfer::ucx
