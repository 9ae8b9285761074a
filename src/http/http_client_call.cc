#include "http/http_client_call.h"

namespace ferry::http {

Result<CallReply> SendCall(httplib::Client& client, const CallRequest& request,
                           const MessageAuth& auth, Deadline deadline) {
  const std::string what = request.method + " " + request.target;
  if (deadline.Expired()) return DeadlineExceededError(what + ": the deadline passed");
  httplib::Request req;
  req.method = request.method;
  req.path = request.target;
  req.body = request.body;
  if (!request.body.empty()) req.set_header("Content-Type", "application/json");
  CallReply out;
  if (auth.enabled()) {
    AuthTag tag = auth.Sign(HttpAuthMessage(request.method, request.target, request.body));
    out.nonce = tag.nonce;
    req.set_header(kAuthHeader, tag.ToString());
  }
  bool too_big = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (out.body.size() + n > request.max_reply_bytes) {
      too_big = true;
      return false;
    }
    out.body.append(data, n);
    return !deadline.Expired();
  };
  auto res = client.send(req);
  if (too_big) {
    return ResourceExhaustedError(what + ": the reply is larger than " +
                                  std::to_string(request.max_reply_bytes) + " bytes");
  }
  if (!res) {
    // A timeout that fired at the deadline (within poll's slack) is the deadline's.
    if (!deadline.IsInfinite() && deadline.Remaining() <= std::chrono::milliseconds(2)) {
      return DeadlineExceededError(what + ": the deadline passed");
    }
    return UnavailableError(what + ": " + httplib::to_string(res.error()));
  }
  out.status = res->status;
  out.headers = res->headers;
  return out;
}

Status VerifyCallReply(const MessageAuth& auth, const CallReply& reply) {
  std::string mac;
  if (auto it = reply.headers.find(kAuthReplyHeader); it != reply.headers.end()) mac = it->second;
  return auth.VerifyReply(reply.nonce,
                          HttpAuthMessage(std::to_string(reply.status), "", reply.body), mac);
}

}  // namespace ferry::http
