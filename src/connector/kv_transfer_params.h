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
// Strings are at most kMaxTransferParamBytes bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::connector {

inline constexpr size_t kMaxTransferParamBytes = 1024;

struct KvTransferParams {
  bool do_remote_decode = false;
  bool do_remote_prefill = false;
  std::string transfer_id;
  std::string remote_engine_id;
  std::string remote_bootstrap_addr;
  std::string ferry_proxy_auth;

  // `text`: a JSON object, or "" / "null" for none (all defaults). Errors: InvalidArgument
  // naming the field ("kv_transfer_params.transfer_id: must be a string").
  static Result<KvTransferParams> Parse(std::string_view text);
  // A JSON object with the fields that are set (flags always).
  std::string ToJson() const;
};

}  // namespace ferry::connector
