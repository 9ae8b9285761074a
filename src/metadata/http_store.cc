#include "metadata/http_store.h"

#include <httplib.h>

#include "metadata/internal/http_call.h"

namespace ferry::metadata {
namespace {

using internal::ApplyDeadline;

constexpr std::string_view kScheme = "http://";

// Turns a non-2xx HTTP reply into a Status; `what` names the request.
Status StatusFromHttpReply(const http::CallReply& reply, const std::string& what) {
  std::string body = reply.body.substr(0, 200);
  std::string msg = what + ": HTTP " + std::to_string(reply.status) +
                    (body.empty() ? std::string() : " (" + body + ")");
  if (reply.status >= 500) return UnavailableError(msg);
  return InternalError(msg + "; is this a metadata server speaking GET/PUT/DELETE ?key=?");
}

Status ExpiredBeforeStart(const std::string& what) {
  return DeadlineExceededError(what + ": the deadline passed before the request was sent");
}

}  // namespace

Result<std::unique_ptr<HttpMetadataStore>> HttpMetadataStore::Create(const std::string& url,
                                                                     const std::string& secret) {
  if (url.compare(0, kScheme.size(), kScheme) != 0) {
    return InvalidArgumentError("bad metadata URL '" + url +
                                "': expected http://host:port/path (https is not supported)");
  }
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (path.find_first_of("?#") != std::string::npos) {
    return InvalidArgumentError("bad metadata URL '" + url +
                                "': the path must not hold a query or fragment");
  }
  auto server = ParseHostPort(authority, /*default_port=*/80);
  if (!server.ok()) return server.status().WithContext("bad metadata URL '" + url + "'");
  return std::unique_ptr<HttpMetadataStore>(
      new HttpMetadataStore(url, std::move(server).value(), std::move(path), secret));
}

std::string HttpMetadataStore::Target(const std::string& key) const {
  return path_ + "?key=" + internal::PercentEncode(key);
}

Result<http::CallReply> HttpMetadataStore::Call(const std::string& method,
                                                const std::string& target, const std::string& body,
                                                Deadline deadline, const std::string& what) {
  if (deadline.Expired()) return ExpiredBeforeStart(what);
  httplib::Client client(server_.host, server_.port);
  ApplyDeadline(client, deadline);
  auto reply = http::SendCall(client, {method, target, body, kMaxValueBytes}, auth_, deadline);
  if (!reply.ok()) return Status(reply.status().code(), what + ": " + reply.status().message());
  if (reply->status == 401 && auth_.enabled()) {
    return PermissionDeniedError(what + ": the metadata server refused our authentication (" +
                                 reply->body.substr(0, 200) +
                                 "); does it run with the same secret (--secret)?");
  }
  return reply;
}

Status HttpMetadataStore::Put(const std::string& key, const std::string& value, Deadline deadline) {
  const std::string what = "PUT " + url_ + " key '" + key + "'";
  if (value.size() > kMaxValueBytes) {
    return InvalidArgumentError(what + ": the value is larger than " +
                                std::to_string(kMaxValueBytes) + " bytes");
  }
  FERRY_ASSIGN_OR_RETURN(http::CallReply res, Call("PUT", Target(key), value, deadline, what));
  if (res.status == 200 || res.status == 201 || res.status == 204) return OkStatus();
  return StatusFromHttpReply(res, what);
}

Result<std::string> HttpMetadataStore::Get(const std::string& key, Deadline deadline) {
  const std::string what = "GET " + url_ + " key '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(http::CallReply res, Call("GET", Target(key), "", deadline, what));
  if (res.status == 200) return std::move(res.body);
  if (res.status == 404) return NotFoundError("no metadata under key '" + key + "' at " + url_);
  return StatusFromHttpReply(res, what);
}

Status HttpMetadataStore::Delete(const std::string& key, Deadline deadline) {
  const std::string what = "DELETE " + url_ + " key '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(http::CallReply res, Call("DELETE", Target(key), "", deadline, what));
  if (res.status == 200 || res.status == 204 || res.status == 404) return OkStatus();
  return StatusFromHttpReply(res, what);
}

}  // namespace ferry::metadata
