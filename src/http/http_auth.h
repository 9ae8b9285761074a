// Authentication of HTTP requests and replies with the deployment's shared secret, for the
// services that take it (bootstrap server, metadata server). The tag formats are
// message_auth.h's: a request carries X-Ferry-Auth over HttpAuthMessage(method, target,
// body); its reply carries X-Ferry-Auth-Reply, a MAC bound to the request's nonce over
// HttpAuthMessage(status, "", body).
//
//   MessageAuth auth(secret, "bootstrap");
//   server->Route("GET", "/query", [&](const http::Request& req, http::Response& res) {
//     auto nonce = http::VerifyRequest(auth, req);
//     if (!nonce.ok()) return res.Set(401, nonce.status().message(), "text/plain");
//     res.Set(200, Table(), "application/json");
//     http::SignReply(auth, *nonce, res);
//   });
//
// Thread safety: as MessageAuth (thread-safe).
#pragma once

#include <string>

#include "common/message_auth.h"
#include "ferry/status.h"
#include "http/http_request.h"
#include "http/http_response.h"

namespace ferry::http {

// The request's nonce when its X-Ferry-Auth tag verifies ("" when `auth` is disabled).
// Errors: PermissionDenied (missing, forged, stale or replayed tag), with a message for a
// 401 body.
Result<std::string> VerifyRequest(MessageAuth& auth, const Request& req);

// Adds X-Ferry-Auth-Reply to a finished (non-streaming) response. No-op when `auth` is
// disabled.
void SignReply(const MessageAuth& auth, const std::string& nonce, Response& res);

}  // namespace ferry::http
