// The proxy's request rewriting (protocol.md, "Request lifecycle", step 1), free of HTTP so
// that it can be tested alone.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ferry::proxy {

// "xfer-<uuid4>".
std::string NewTransferId();

// The body sent to the prefill instance: stream false, max_tokens 1 (and
// max_completion_tokens 1 if present), stream_options removed, and
// kv_transfer_params {do_remote_decode: true, do_remote_prefill: false, transfer_id}.
nlohmann::json MakePrefillRequest(const nlohmann::json& client_body,
                                  const std::string& transfer_id);

// The body sent to the decode instance: the client's body unchanged plus
// kv_transfer_params {do_remote_decode: false, do_remote_prefill: true,
// remote_bootstrap_addr, remote_engine_id, transfer_id}.
nlohmann::json MakeDecodeRequest(const nlohmann::json& client_body, const std::string& transfer_id,
                                 const std::string& bootstrap_addr, const std::string& engine_id);

// True for a request one KV transfer cannot serve, which the proxy sends whole to one
// instance instead of splitting it (an instance refuses kv_transfer_params with these):
// n (or best_of) > 1, a list of several prompts, or echo with logprobs (prompt scoring).
bool NeedsOneInstance(const nlohmann::json& client_body);

// An OpenAI-style error body {"error":{"message","type","code"}}.
std::string ErrorBody(const std::string& message, const std::string& type, int code);

}  // namespace ferry::proxy
