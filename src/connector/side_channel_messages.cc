#include "connector/side_channel_messages.h"

#include <cstdint>
#include <msgpack.hpp>

namespace ferry::connector {
namespace {

// Bounds that keep a hostile message from making us allocate without limit.
constexpr size_t kMaxMessageBytes = 64 << 20;

template <typename T>
Status Get(const std::map<std::string, msgpack::object>& m, const char* key, T* out,
           bool required) {
  auto it = m.find(key);
  if (it == m.end()) {
    return required ? InvalidArgumentError(std::string("side-channel message lacks '") + key + "'")
                    : OkStatus();
  }
  try {
    it->second.convert(*out);
  } catch (const std::exception&) {
    return InvalidArgumentError(std::string("side-channel field '") + key + "' has the wrong type");
  }
  return OkStatus();
}

Result<std::map<std::string, msgpack::object>> ParseMap(std::string_view wire,
                                                        msgpack::object_handle* handle) {
  if (wire.size() > kMaxMessageBytes) {
    return InvalidArgumentError("side-channel message larger than 64 MiB");
  }
  try {
    // A container header claims its element count up front; without limits a 9-byte
    // message could make the parser reserve hundreds of GiB. No element count can exceed
    // the message's own length, and real messages are shallow.
    const auto n = static_cast<std::size_t>(wire.size());
    const msgpack::unpack_limit limits(/*array=*/n, /*map=*/n, /*str=*/n, /*bin=*/n,
                                       /*ext=*/0, /*depth=*/8);
    *handle = msgpack::unpack(wire.data(), wire.size(), nullptr, nullptr, limits);
    std::map<std::string, msgpack::object> m;
    handle->get().convert(m);
    return m;
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("side-channel message is not a msgpack map: ") +
                                e.what());
  }
}

}  // namespace

std::string EncodePullRequest(const KvPullRequest& req) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(&buf);
  pk.pack_map(9 + (req.ferry_layout.empty() ? 0 : 1) + (req.ferry_token.empty() ? 0 : 1));
  pk.pack(std::string("remote_hostname"));
  pk.pack(req.remote_hostname);
  pk.pack(std::string("remote_port"));
  pk.pack(req.remote_port);
  pk.pack(std::string("remote_tp_size"));
  pk.pack(req.remote_tp_size);
  pk.pack(std::string("remote_tp_rank"));
  pk.pack(req.remote_tp_rank);
  pk.pack(std::string("remote_pp_size"));
  pk.pack(req.remote_pp_size);
  pk.pack(std::string("req_blocks"));
  pk.pack_map(static_cast<uint32_t>(req.req_blocks.size()));
  for (const auto& [id, rb] : req.req_blocks) {
    pk.pack(id);
    pk.pack_array(2);
    pk.pack(rb.transfer_id);
    pk.pack(rb.block_ids);
  }
  pk.pack(std::string("kv_caches_base_addr"));
  pk.pack(req.kv_caches_base_addr);
  pk.pack(std::string("block_lens"));
  pk.pack(req.block_lens);
  pk.pack(std::string("kv_block_lens"));
  pk.pack(req.kv_block_lens);
  if (!req.ferry_layout.empty()) {
    pk.pack(std::string("ferry_layout"));
    pk.pack(req.ferry_layout);
  }
  if (!req.ferry_token.empty()) {
    pk.pack(std::string("ferry_token"));
    pk.pack(req.ferry_token);
  }
  return std::string(buf.data(), buf.size());
}

Result<KvPullRequest> DecodePullRequest(std::string_view wire) {
  msgpack::object_handle handle;
  FERRY_ASSIGN_OR_RETURN(auto m, ParseMap(wire, &handle));
  KvPullRequest req;
  FERRY_RETURN_IF_ERROR(Get(m, "remote_hostname", &req.remote_hostname, true));
  FERRY_RETURN_IF_ERROR(Get(m, "remote_port", &req.remote_port, true));
  FERRY_RETURN_IF_ERROR(Get(m, "remote_tp_size", &req.remote_tp_size, false));
  FERRY_RETURN_IF_ERROR(Get(m, "remote_tp_rank", &req.remote_tp_rank, false));
  FERRY_RETURN_IF_ERROR(Get(m, "remote_pp_size", &req.remote_pp_size, false));
  FERRY_RETURN_IF_ERROR(Get(m, "kv_caches_base_addr", &req.kv_caches_base_addr, true));
  FERRY_RETURN_IF_ERROR(Get(m, "block_lens", &req.block_lens, true));
  FERRY_RETURN_IF_ERROR(Get(m, "kv_block_lens", &req.kv_block_lens, false));
  FERRY_RETURN_IF_ERROR(Get(m, "ferry_layout", &req.ferry_layout, false));
  FERRY_RETURN_IF_ERROR(Get(m, "ferry_token", &req.ferry_token, false));
  if (req.remote_hostname.empty() || req.remote_hostname.size() > 255) {
    return InvalidArgumentError("remote_hostname must be 1 to 255 bytes");
  }
  if (req.ferry_token.size() > kMaxPullIdBytes) {
    return InvalidArgumentError("ferry_token is longer than 256 bytes");
  }
  std::map<std::string, msgpack::object> blocks;
  FERRY_RETURN_IF_ERROR(Get(m, "req_blocks", &blocks, true));
  if (blocks.size() > kMaxPullRequestsPerMessage) {
    return InvalidArgumentError("req_blocks holds " + std::to_string(blocks.size()) +
                                " requests; at most " + std::to_string(kMaxPullRequestsPerMessage) +
                                " per message");
  }
  for (const auto& [id, obj] : blocks) {
    if (id.empty() || id.size() > kMaxPullIdBytes) {
      return InvalidArgumentError("req_blocks keys must be 1 to 256 bytes");
    }
    if (obj.type != msgpack::type::ARRAY || obj.via.array.size != 2) {
      return InvalidArgumentError("req_blocks['" + id + "'] must be [transfer_id, block ids]");
    }
    RequestBlocks rb;
    try {
      obj.via.array.ptr[0].convert(rb.transfer_id);
      obj.via.array.ptr[1].convert(rb.block_ids);
    } catch (const std::exception&) {
      return InvalidArgumentError("req_blocks['" + id + "'] has malformed entries");
    }
    if (rb.transfer_id.empty() || rb.transfer_id.size() > kMaxPullIdBytes) {
      return InvalidArgumentError("req_blocks['" + id + "'] transfer_id must be 1 to 256 bytes");
    }
    size_t n = 0;
    for (const auto& group : rb.block_ids) {
      for (int64_t b : group) {
        if (b < 0 || b > INT32_MAX) {
          return InvalidArgumentError("req_blocks['" + id + "'] holds block id " +
                                      std::to_string(b) + ", outside 0..2^31-1");
        }
      }
      n += group.size();
    }
    if (n > kMaxPullBlocks || rb.block_ids.size() > 16) {
      return InvalidArgumentError("req_blocks['" + id + "'] asks for too many blocks");
    }
    req.req_blocks.emplace(id, std::move(rb));
  }
  if (req.remote_port <= 0 || req.remote_port > 65535) {
    return InvalidArgumentError("remote_port must be 1..65535");
  }
  if (req.kv_caches_base_addr.size() != req.block_lens.size()) {
    return InvalidArgumentError("kv_caches_base_addr and block_lens differ in length");
  }
  for (int64_t len : req.block_lens) {
    if (len <= 0) return InvalidArgumentError("block_lens must be positive");
  }
  return req;
}

std::string EncodePullReply(const KvPullReply& reply) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(&buf);
  pk.pack_map(4);
  pk.pack(std::string("status"));
  pk.pack(static_cast<int64_t>(reply.status));
  pk.pack(std::string("ok_reqs"));
  pk.pack(reply.ok_reqs);
  pk.pack(std::string("err_reqs"));
  pk.pack(reply.err_reqs);
  pk.pack(std::string("err_msg"));
  pk.pack(reply.err_msg);
  return std::string(buf.data(), buf.size());
}

Result<KvPullReply> DecodePullReply(std::string_view wire) {
  msgpack::object_handle handle;
  FERRY_ASSIGN_OR_RETURN(auto m, ParseMap(wire, &handle));
  KvPullReply reply;
  int64_t status = 0;
  FERRY_RETURN_IF_ERROR(Get(m, "status", &status, true));
  if (status < 0 || status > 2) return InvalidArgumentError("reply status must be 0, 1 or 2");
  reply.status = static_cast<PullStatus>(status);
  FERRY_RETURN_IF_ERROR(Get(m, "ok_reqs", &reply.ok_reqs, false));
  FERRY_RETURN_IF_ERROR(Get(m, "err_reqs", &reply.err_reqs, false));
  FERRY_RETURN_IF_ERROR(Get(m, "err_msg", &reply.err_msg, false));
  return reply;
}

}  // namespace ferry::connector
