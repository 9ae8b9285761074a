#include "proxy/request_rewrite.h"

#include <cstdio>
#include <random>

namespace ferry::proxy {

std::string NewTransferId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[48];
  std::snprintf(buf, sizeof(buf), "xfer-%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

nlohmann::json MakePrefillRequest(const nlohmann::json& client_body,
                                  const std::string& transfer_id) {
  nlohmann::json body = client_body;
  body["stream"] = false;
  body["max_tokens"] = 1;
  if (body.contains("max_completion_tokens")) body["max_completion_tokens"] = 1;
  body.erase("stream_options");
  body["kv_transfer_params"] = {
      {"do_remote_decode", true}, {"do_remote_prefill", false}, {"transfer_id", transfer_id}};
  return body;
}

nlohmann::json MakeDecodeRequest(const nlohmann::json& client_body, const std::string& transfer_id,
                                 const std::string& bootstrap_addr, const std::string& engine_id) {
  nlohmann::json body = client_body;
  body["kv_transfer_params"] = {{"do_remote_decode", false},
                                {"do_remote_prefill", true},
                                {"remote_bootstrap_addr", bootstrap_addr},
                                {"remote_engine_id", engine_id},
                                {"transfer_id", transfer_id}};
  return body;
}

bool NeedsOneInstance(const nlohmann::json& client_body) {
  for (const char* key : {"n", "best_of"}) {
    auto it = client_body.find(key);
    if (it != client_body.end() && it->is_number() && it->get<double>() > 1) return true;
  }
  auto prompt = client_body.find("prompt");
  if (prompt != client_body.end() && prompt->is_array() && prompt->size() > 1 &&
      ((*prompt)[0].is_string() || (*prompt)[0].is_array())) {
    return true;
  }
  auto echo = client_body.find("echo");
  auto logprobs = client_body.find("logprobs");
  return echo != client_body.end() && echo->is_boolean() && echo->get<bool>() &&
         logprobs != client_body.end() && !logprobs->is_null() &&
         !(logprobs->is_boolean() && !logprobs->get<bool>());
}

std::string ErrorBody(const std::string& message, const std::string& type, int code) {
  return nlohmann::json{{"error", {{"message", message}, {"type", type}, {"code", code}}}}.dump();
}

}  // namespace ferry::proxy
