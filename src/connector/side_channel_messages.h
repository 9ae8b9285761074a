// Side-channel messages between decode and prefill workers (protocol.md, "Side channel"):
// msgpack maps carried over ZeroMQ (DEALER on decode, ROUTER on prefill). Control only: KV
// bytes never travel here.
//
// Example:
//   KvPullRequest req;  // filled in by the decode side
//   std::string wire = EncodePullRequest(req);
//   FERRY_ASSIGN_OR_RETURN(KvPullRequest back, DecodePullRequest(wire));
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::connector {

// What one decode request wants from the prefill side.
struct RequestBlocks {
  std::string transfer_id;
  // Decode-side block ids, one list per KV group (Ferry has one group).
  std::vector<std::vector<int64_t>> block_ids;
};

// Decode -> prefill: "write these blocks into my memory".
struct KvPullRequest {
  std::string remote_hostname;  // decoder's transfer-engine host
  int64_t remote_port = 0;      // decoder's transfer-engine RPC port
  int64_t remote_tp_size = 1;
  int64_t remote_tp_rank = 0;
  int64_t remote_pp_size = 1;
  std::map<std::string, RequestBlocks> req_blocks;  // decode request id -> blocks
  std::vector<uint64_t> kv_caches_base_addr;        // one per KV region
  std::vector<int64_t> block_lens;                  // bytes of one block, per region
  std::vector<int64_t> kv_block_lens;               // optional, per region
  // Ferry's layout description (kv_cache_layout.h) so both sides can check they agree:
  // [num_layers, num_kv_heads, head_dim, block_size]. Optional for foreign peers.
  std::vector<int64_t> ferry_layout;
  // A random token the producer echoes in the transfer-engine notification it sends after
  // writing (KvWrittenNotification). Optional for foreign peers.
  std::string ferry_token;
};

// Bounds DecodePullRequest enforces: requests per message, bytes of an id, block ids per
// request.
inline constexpr size_t kMaxPullRequestsPerMessage = 1024;
inline constexpr size_t kMaxPullIdBytes = 256;
inline constexpr size_t kMaxPullBlocks = 1u << 20;

enum class PullStatus : int64_t { kFinish = 0, kContinue = 1, kError = 2 };

// Prefill -> decode.
struct KvPullReply {
  PullStatus status = PullStatus::kFinish;
  std::vector<std::string> ok_reqs;
  std::vector<std::string> err_reqs;
  std::string err_msg;
};

std::string EncodePullRequest(const KvPullRequest& req);
// Errors: InvalidArgument naming the malformed, missing or out-of-bounds field. Never throws.
Result<KvPullRequest> DecodePullRequest(std::string_view wire);

std::string EncodePullReply(const KvPullReply& reply);
Result<KvPullReply> DecodePullReply(std::string_view wire);

}  // namespace ferry::connector
