#include "http/http_auth.h"

namespace ferry::http {

Result<std::string> VerifyRequest(MessageAuth& auth, const Request& req) {
  if (!auth.enabled()) return std::string();
  auto tag = AuthTag::Parse(req.Header(kAuthHeader));
  if (!tag.ok()) {
    return PermissionDeniedError(auth.channel() +
                                 ": request refused: no valid X-Ferry-Auth header (set the same "
                                 "FERRY_KV_SECRET on every instance)");
  }
  FERRY_RETURN_IF_ERROR(auth.Verify(HttpAuthMessage(req.method, req.target, req.body), *tag));
  return tag->nonce;
}

void SignReply(const MessageAuth& auth, const std::string& nonce, Response& res) {
  if (!auth.enabled()) return;
  res.SetHeader(kAuthReplyHeader,
                auth.SignReply(nonce, HttpAuthMessage(std::to_string(res.status), "", res.body)));
}

}  // namespace ferry::http
