#include "metadata/etcd_store.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/json_limits.h"
#include "metadata/internal/base64.h"
#include "metadata/internal/http_call.h"

namespace ferry::metadata {
namespace {

using internal::Base64Decode;
using internal::Base64Encode;
using nlohmann::json;

constexpr int kDefaultEtcdPort = 2379;

std::string Snippet(const std::string& body) {
  return body.size() <= 200 ? body : body.substr(0, 200) + "...";
}

// Parses a reply body that must be a JSON object. Errors: Unavailable naming the request.
Result<json> ParseObject(const std::string& body, const std::string& what) {
  auto j = ParseJson(body, {.max_bytes = 2 * kMaxValueBytes + 4096, .max_depth = 8});
  if (!j.ok() || !j->is_object()) {
    return UnavailableError(what + ": the reply is not etcd's JSON ('" + Snippet(body) +
                            "'); is this an etcd v3.4+ client URL?");
  }
  return std::move(*j);
}

// Maps a non-200 gateway reply: etcd puts the gRPC code (same numbers as StatusCode) and
// a message in the body; fall back to the HTTP status.
Status StatusFromEtcdError(const httplib::Response& reply, const std::string& what) {
  json j = ParseJson(reply.body, {.max_bytes = 1 << 20, .max_depth = 8}).value_or(json());
  std::string message = Snippet(reply.body);
  int code = 0;
  if (j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) message = m->get<std::string>();
    auto c = j.find("code");
    if (c != j.end() && c->is_number_integer()) code = c->get<int>();
  }
  std::string msg = what + ": etcd answered HTTP " + std::to_string(reply.status) + ": " + message;
  if (code >= 3 && code <= 15) {  // codes Ferry shares with gRPC
    return Status(static_cast<StatusCode>(code), msg);
  }
  if (reply.status >= 500) return UnavailableError(msg);
  return InternalError(msg);
}

std::string KeyBody(const std::string& key) {
  json body = json::object();
  body["key"] = Base64Encode(key);
  return body.dump();
}

}  // namespace

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::Create(const std::string& endpoints,
                                                                     std::string description) {
  if (description.empty()) description = "etcd://" + endpoints;
  std::vector<HostPort> parsed;
  size_t start = 0;
  while (start <= endpoints.size()) {
    size_t comma = endpoints.find(',', start);
    if (comma == std::string::npos) comma = endpoints.size();
    std::string one = endpoints.substr(start, comma - start);
    if (one.empty()) {
      return InvalidArgumentError("bad etcd endpoints '" + endpoints +
                                  "': empty entry (expected host:port[,host:port...])");
    }
    auto hp = ParseHostPort(one, kDefaultEtcdPort);
    if (!hp.ok()) return hp.status().WithContext("bad etcd endpoints '" + endpoints + "'");
    parsed.push_back(std::move(hp).value());
    start = comma + 1;
  }
  return std::unique_ptr<EtcdMetadataStore>(
      new EtcdMetadataStore(std::move(parsed), std::move(description)));
}

Result<std::string> EtcdMetadataStore::Post(const std::string& api_path,
                                            const std::string& json_body, const std::string& what,
                                            Deadline deadline) {
  const size_t n = endpoints_.size();
  const size_t first = preferred_.load(std::memory_order_relaxed) % n;
  std::string failures;
  for (size_t i = 0; i < n; ++i) {
    if (deadline.Expired()) {
      return DeadlineExceededError(what + ": no etcd endpoint answered before the deadline" +
                                   (failures.empty() ? "" : " (" + failures + ")"));
    }
    const size_t idx = (first + i) % n;
    const HostPort& ep = endpoints_[idx];
    httplib::Client client(ep.host, ep.port);
    auto cap = deadline.IsInfinite() ? std::chrono::nanoseconds(std::chrono::seconds(5))
                                     : deadline.Remaining() / static_cast<int64_t>(n - i);
    internal::ApplyDeadline(client, deadline, cap);
    // A reply is base64 of at most one value plus a little JSON: read no more than that.
    std::string reply;
    bool too_big = false;
    httplib::Request req;
    req.method = "POST";
    req.path = api_path;
    req.body = json_body;
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      if (reply.size() + len > 2 * kMaxValueBytes + 4096) {
        too_big = true;
        return false;
      }
      reply.append(data, len);
      return true;
    };
    auto res = client.send(req);
    if (too_big) return ResourceExhaustedError(what + ": etcd's reply is too large");
    if (res) res->body = std::move(reply);
    if (!res) {
      if (internal::IsConnectFailure(res.error()) && !internal::NearlyExpired(deadline)) {
        if (!failures.empty()) failures += "; ";
        failures += ep.ToString() + ": " + httplib::to_string(res.error());
        continue;  // nothing reached this endpoint: try the next
      }
      return internal::StatusFromHttpError(res.error(), deadline,
                                           what + " at " + ep.ToString() + api_path);
    }
    preferred_.store(idx, std::memory_order_relaxed);
    if (res->status != 200) return StatusFromEtcdError(*res, what + " at " + ep.ToString());
    return std::move(res->body);
  }
  return UnavailableError(what + ": no etcd endpoint reachable (" + failures +
                          "); is etcd running at " + description_ + "?");
}

Status EtcdMetadataStore::Put(const std::string& key, const std::string& value, Deadline deadline) {
  const std::string what = "etcd put '" + key + "'";
  json body = json::object();
  body["key"] = Base64Encode(key);
  body["value"] = Base64Encode(value);
  FERRY_ASSIGN_OR_RETURN(std::string reply, Post("/v3/kv/put", body.dump(), what, deadline));
  return ParseObject(reply, what).status();
}

Result<std::string> EtcdMetadataStore::Get(const std::string& key, Deadline deadline) {
  const std::string what = "etcd range '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(std::string reply, Post("/v3/kv/range", KeyBody(key), what, deadline));
  FERRY_ASSIGN_OR_RETURN(json j, ParseObject(reply, what));
  auto kvs = j.find("kvs");
  // proto3 JSON leaves out empty repeated fields: no "kvs" means no such key.
  if (kvs == j.end() || kvs->is_null() || (kvs->is_array() && kvs->empty())) {
    return NotFoundError("no metadata under key '" + key + "' in " + description_);
  }
  if (!kvs->is_array() || !kvs->front().is_object()) {
    return UnavailableError(what + ": 'kvs' in the reply is not an array of objects");
  }
  const json& kv = kvs->front();
  auto value = kv.find("value");
  if (value == kv.end() || value->is_null()) return std::string();  // empty value omitted
  if (!value->is_string()) return UnavailableError(what + ": 'value' in the reply is not a string");
  auto decoded = Base64Decode(value->get_ref<const std::string&>());
  if (!decoded.ok()) {
    return UnavailableError(what +
                            ": 'value' in the reply is not base64: " + decoded.status().message());
  }
  return std::move(decoded).value();
}

Status EtcdMetadataStore::Delete(const std::string& key, Deadline deadline) {
  const std::string what = "etcd deleterange '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(std::string reply,
                         Post("/v3/kv/deleterange", KeyBody(key), what, deadline));
  return ParseObject(reply, what).status();
}

}  // namespace ferry::metadata
