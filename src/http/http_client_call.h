// One outgoing HTTP call as Ferry's services make it (connector -> bootstrap server,
// metadata client -> metadata server): signed with the deployment secret when there is one
// (http_auth.h's header), and its reply read only up to a size limit, so that a hostile or
// broken server cannot make us buffer without bound.
//
//   MessageAuth auth(secret, "bootstrap");
//   FERRY_ASSIGN_OR_RETURN(http::CallReply r,
//       http::SendCall(client, {"GET", "/query", "", 1 << 20}, auth, deadline));
//   FERRY_RETURN_IF_ERROR(http::VerifyCallReply(auth, r));   // when replies are signed
//
// Thread safety: as the client passed in (one call at a time per httplib::Client).
#pragma once

#include <httplib.h>

#include <string>

#include "common/deadline.h"
#include "common/message_auth.h"
#include "ferry/status.h"

namespace ferry::http {

struct CallRequest {
  std::string method;      // "GET", "POST", "PUT", "DELETE"
  std::string target;      // path with query
  std::string body;        // sent as application/json when not empty
  size_t max_reply_bytes;  // a longer reply body fails the call
};

struct CallReply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string nonce;  // of the request's tag ("" without a secret)
};

// Sends `request` (with an X-Ferry-Auth tag when `auth` is enabled). Errors:
// DeadlineExceeded (`deadline` passed), Unavailable (refused, reset, timed out, cut short),
// ResourceExhausted (reply larger than max_reply_bytes).
Result<CallReply> SendCall(httplib::Client& client, const CallRequest& request,
                           const MessageAuth& auth, Deadline deadline = Deadline::Infinite());

// OK when `auth` is disabled or the reply carries a valid X-Ferry-Auth-Reply for it.
// Errors: PermissionDenied.
Status VerifyCallReply(const MessageAuth& auth, const CallReply& reply);

}  // namespace ferry::http
