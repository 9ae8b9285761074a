#include "ferry/segment.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/json_limits.h"

namespace ferry {

const BufferDescriptor* SegmentDescriptor::FindBuffer(uint64_t addr, uint64_t len) const {
  // buffers are sorted by addr and do not overlap: the candidate is the last one that
  // starts at or before addr.
  auto it = std::upper_bound(buffers.begin(), buffers.end(), addr,
                             [](uint64_t a, const BufferDescriptor& b) { return a < b.addr; });
  if (it == buffers.begin()) return nullptr;
  --it;
  if (!it->remote_accessible || !it->Contains(addr, len)) return nullptr;
  return &*it;
}

std::string SegmentDescriptor::ToJson() const {
  nlohmann::json j;
  j["name"] = name;
  j["host"] = host;
  j["rpc_port"] = rpc_port;
  j["pid"] = pid;
  j["host_id"] = host_id;
  j["transports"] = transports;
  if (!transport_info.empty()) j["transport_info"] = transport_info;
  j["version"] = version;
  auto& bufs = j["buffers"] = nlohmann::json::array();
  for (const auto& b : buffers) {
    bufs.push_back({{"addr", b.addr},
                    {"length", b.length},
                    {"location", b.location},
                    {"remote", b.remote_accessible}});
  }
  return j.dump();
}

Result<SegmentDescriptor> SegmentDescriptor::FromJson(const std::string& text) {
  auto parsed = ParseJson(text, {.max_bytes = 16u << 20, .max_depth = 4});
  if (!parsed.ok() || !parsed->is_object()) {
    return InvalidArgumentError("segment descriptor is not a JSON object" +
                                (parsed.ok() ? std::string() : ": " + parsed.status().message()));
  }
  const nlohmann::json& j = *parsed;
  SegmentDescriptor d;
  auto field = [&](const char* key, auto& out) -> Status {
    auto it = j.find(key);
    if (it == j.end())
      return InvalidArgumentError(std::string("segment descriptor lacks '") + key + "'");
    try {
      it->get_to(out);
    } catch (const nlohmann::json::exception&) {
      return InvalidArgumentError(std::string("segment descriptor field '") + key +
                                  "' has the wrong type");
    }
    return OkStatus();
  };
  FERRY_RETURN_IF_ERROR(field("name", d.name));
  FERRY_RETURN_IF_ERROR(field("host", d.host));
  FERRY_RETURN_IF_ERROR(field("rpc_port", d.rpc_port));
  FERRY_RETURN_IF_ERROR(field("pid", d.pid));
  FERRY_RETURN_IF_ERROR(field("host_id", d.host_id));
  FERRY_RETURN_IF_ERROR(field("transports", d.transports));
  FERRY_RETURN_IF_ERROR(field("version", d.version));
  if (j.contains("transport_info")) {
    FERRY_RETURN_IF_ERROR(field("transport_info", d.transport_info));
  }
  auto bufs = j.find("buffers");
  if (bufs == j.end() || !bufs->is_array()) {
    return InvalidArgumentError("segment descriptor lacks a 'buffers' array");
  }
  for (const auto& b : *bufs) {
    BufferDescriptor bd;
    try {
      bd.addr = b.at("addr").get<uint64_t>();
      bd.length = b.at("length").get<uint64_t>();
      bd.location = b.value("location", std::string("cpu"));
      bd.remote_accessible = b.value("remote", true);
    } catch (const nlohmann::json::exception&) {
      return InvalidArgumentError("segment descriptor has a malformed buffer entry");
    }
    if (bd.length == 0 || bd.addr + bd.length < bd.addr) {
      return InvalidArgumentError("segment descriptor has an empty or wrapping buffer");
    }
    d.buffers.push_back(std::move(bd));
  }
  std::sort(d.buffers.begin(), d.buffers.end(),
            [](const BufferDescriptor& a, const BufferDescriptor& b) { return a.addr < b.addr; });
  for (size_t i = 1; i < d.buffers.size(); ++i) {
    if (d.buffers[i - 1].addr + d.buffers[i - 1].length > d.buffers[i].addr) {
      return InvalidArgumentError("segment descriptor has overlapping buffers");
    }
  }
  return d;
}

}  // namespace ferry
