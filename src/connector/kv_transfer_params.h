// KvTransferParams: a request's kv_transfer_params (vLLM's field, the one the proxy and the
// connectors exchange), with its one parser and its one writer.
//
//   FERRY_ASSIGN_OR_RETURN(KvTransferParams p, KvTransferParams::Parse(text));
//   if (p.do_remote_decode) { ... this prefill keeps the KV for p.transfer_id ... }
//   std::string reply = p.ToJson();
//
// Fields (all optional; unknown ones are ignored, as vLLM does):
//   do_remote_decode: bool        the prefill half: keep the KV for a decoder to pull
//   do_remote_prefill: bool       the decode half: pull the KV from the prefill
//   transfer_id: string           names the KV on the prefill (proxy-chosen)
//   remote_engine_id: string      the prefill's engine id
//   remote_bootstrap_addr: string "http://host:port" of the prefill's bootstrap server
//   ferry_proxy_auth: string      `ferry proxy`'s tag over the three fields above
//   ferry_request_id: string      written by `ferry serve` (never a client): the request's
//                                 X-Request-Id, or the id the server made for it
// Strings are at most kMaxTransferParamBytes bytes.
//
// Older vLLM proxies (docs/connector.md, "vLLM revisions") send other shapes, read here:
//   - no transfer_id: the request id names the transfer (both halves of one request carry
//     the same X-Request-Id); it must then be 1 to kMaxRequestIdBytes printable ASCII
//     characters without spaces;
//   - bootstrap_server_host + bootstrap_server_port (int or decimal string) instead of
//     remote_bootstrap_addr: remote_bootstrap_addr becomes "http://host:port";
//   - remote_dp_rank: Ferry's prefills have one dp rank, so only 0 (or null) is accepted.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/kv_connector.h"
#include "ferry/status.h"

namespace ferry::connector {

inline constexpr size_t kMaxTransferParamBytes = 1024;
// The longest request id that may stand in for a missing transfer_id (the side channel's
// limit on transfer ids).
inline constexpr size_t kMaxRequestIdBytes = 256;
// The key under which `ferry serve` passes the request id to the connector.
inline constexpr const char* kRequestIdKey = engine::kKvRequestIdKey;

struct KvTransferParams {
  bool do_remote_decode = false;
  bool do_remote_prefill = false;
  std::string transfer_id;
  std::string remote_engine_id;
  std::string remote_bootstrap_addr;
  std::string ferry_proxy_auth;
  std::string request_id;  // ferry_request_id

  // `text`: a JSON object, or "" / "null" for none (all defaults). Errors: InvalidArgument
  // naming the field ("kv_transfer_params.transfer_id: must be a string"). A transfer half
  // (do_remote_decode / do_remote_prefill) without transfer_id gets request_id as its
  // transfer_id; without either, transfer_id stays empty (the connector refuses it).
  static Result<KvTransferParams> Parse(std::string_view text);
  // A JSON object with the fields that are set (flags always).
  std::string ToJson() const;
};

}  // namespace ferry::connector
