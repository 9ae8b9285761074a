// Bearer-token checks for OpenAI-style API keys (`ferry serve --api-key`, `ferry proxy
// --api-key`, VLLM_API_KEY): a request passes when it carries `Authorization: Bearer KEY`.
//
//   if (!http::HasBearerToken(req, api_key)) return res.Set(401, body, "application/json");
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "http/http_request.h"

namespace ferry::http {

// True when `key` is empty (no key configured) or the request's Authorization header is
// "Bearer <key>" (scheme case-insensitive; the key compared in constant time).
bool HasBearerToken(const Request& req, std::string_view key);

// "Bearer <key>", the header value a client sends.
std::string BearerHeaderValue(std::string_view key);

}  // namespace ferry::http
