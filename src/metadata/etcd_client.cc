#include "metadata/etcd_client.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/json_limits.h"
#include "common/mutex.h"
#include "metadata/internal/base64.h"
#include "metadata/internal/http_call.h"

namespace ferry::metadata {
namespace {

using internal::Base64Decode;
using internal::Base64Encode;
using nlohmann::json;

constexpr int kDefaultEtcdPort = 2379;
// Largest unary reply read (a range of many keys); larger replies are ResourceExhausted.
constexpr size_t kMaxReplyBytes = 64u << 20;
// Largest single watch message; a larger one breaks the stream (and the watch reconnects).
constexpr size_t kMaxWatchMessageBytes = 4u << 20;
// Deepest JSON in a reply: {"responses":[{"response_range":{"kvs":[{...}]}}]} is 5.
constexpr int kMaxReplyDepth = 8;
// A watch stream's connect timeout, and how long it may stay silent before it reconnects.
constexpr std::chrono::seconds kWatchConnectTimeout(1);
constexpr std::chrono::seconds kWatchIdleTimeout(60);
constexpr std::chrono::milliseconds kWatchMinBackoff(100);
constexpr std::chrono::milliseconds kWatchMaxBackoff(1000);

std::string Snippet(std::string_view body) {
  return body.size() <= 200 ? std::string(body) : std::string(body.substr(0, 200)) + "...";
}

// Parses a reply body that must be a JSON object. Errors: Unavailable naming the request.
Result<json> ParseObject(std::string_view body, const std::string& what) {
  auto j = ParseJson(body, {.max_bytes = kMaxReplyBytes, .max_depth = kMaxReplyDepth});
  if (!j.ok() || !j->is_object()) {
    return UnavailableError(what + ": the reply is not etcd's JSON ('" + Snippet(body) +
                            "'); is this an etcd v3.4+ client URL?");
  }
  return std::move(*j);
}

// etcd's gRPC code (same numbers as StatusCode) as a Status; codes Ferry does not share
// become `fallback`.
Status StatusFromGrpcCode(int64_t code, std::string message, StatusCode fallback) {
  if (code >= 3 && code <= 15) return Status(static_cast<StatusCode>(code), std::move(message));
  return Status(fallback, std::move(message));
}

// Maps a non-200 gateway reply: etcd puts the gRPC code and a message in the body; fall
// back to the HTTP status.
Status StatusFromEtcdError(int http_status, const std::string& body, const std::string& what) {
  json j = ParseJson(body, {.max_bytes = 1 << 20, .max_depth = 8}).value_or(json());
  std::string message = Snippet(body);
  int64_t code = 0;
  if (j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) message = m->get<std::string>();
    auto c = j.find("code");
    if (c != j.end() && c->is_number_integer()) code = c->get<int64_t>();
  }
  return StatusFromGrpcCode(
      code, what + ": etcd answered HTTP " + std::to_string(http_status) + ": " + message,
      http_status >= 500 ? StatusCode::kUnavailable : StatusCode::kInternal);
}

// A streaming endpoint (watch, keepalive) reports errors inside an HTTP 200 reply as
// {"error": {"grpc_code": 5, "message": "..."}}. OK when `reply` has no "error".
Status ErrorInReply(const json& reply, const std::string& what) {
  auto e = reply.find("error");
  if (e == reply.end() || e->is_null()) return OkStatus();
  if (e->is_string()) {
    if (e->get_ref<const std::string&>().empty()) return OkStatus();
    return UnavailableError(what + ": etcd reported an error: " + e->get<std::string>());
  }
  if (!e->is_object()) return UnavailableError(what + ": 'error' in the reply is malformed");
  std::string message = Snippet(e->dump());
  auto m = e->find("message");
  if (m != e->end() && m->is_string()) message = m->get<std::string>();
  auto c = e->find("grpc_code");
  int64_t code = (c != e->end() && c->is_number_integer()) ? c->get<int64_t>() : 0;
  return StatusFromGrpcCode(code, what + ": etcd reported an error: " + message,
                            StatusCode::kUnavailable);
}

// Field readers for the gateway's proto3 JSON: absent (or null) fields are zero values;
// a field of the wrong type is Unavailable naming the request and the field.
Status WrongType(const std::string& what, std::string_view field, std::string_view expected) {
  return UnavailableError(what + ": '" + std::string(field) + "' in the reply is not " +
                          std::string(expected));
}

// int64s come as decimal strings; plain JSON integers are accepted too.
Result<int64_t> Int64Field(const json& obj, std::string_view field, const std::string& what) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return int64_t{0};
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return WrongType(what, field, "an int64");
    }
    return static_cast<int64_t>(it->get<uint64_t>());
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return value;
  }
  return WrongType(what, field, "an int64");
}

Result<bool> BoolField(const json& obj, std::string_view field, const std::string& what) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return false;
  if (!it->is_boolean()) return WrongType(what, field, "a boolean");
  return it->get<bool>();
}

Result<std::string> StringField(const json& obj, std::string_view field, const std::string& what) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return WrongType(what, field, "a string");
  return it->get<std::string>();
}

// A bytes field: base64 in a string.
Result<std::string> BytesField(const json& obj, std::string_view field, const std::string& what) {
  FERRY_ASSIGN_OR_RETURN(std::string b64, StringField(obj, field, what));
  auto decoded = Base64Decode(b64);
  if (!decoded.ok()) return WrongType(what, field, "base64 (" + decoded.status().message() + ")");
  return std::move(decoded).value();
}

// An object field; absent: an empty object.
Result<const json*> ObjectField(const json& obj, std::string_view field, const std::string& what) {
  static const json kEmpty = json::object();
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return &kEmpty;
  if (!it->is_object()) return WrongType(what, field, "an object");
  return &*it;
}

// An array of objects; absent: empty.
Result<const json*> ArrayField(const json& obj, std::string_view field, const std::string& what) {
  static const json kEmpty = json::array();
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return &kEmpty;
  if (!it->is_array()) return WrongType(what, field, "an array");
  for (const json& e : *it) {
    if (!e.is_object()) return WrongType(what, field, "an array of objects");
  }
  return &*it;
}

Result<int64_t> HeaderRevision(const json& reply, const std::string& what) {
  FERRY_ASSIGN_OR_RETURN(const json* header, ObjectField(reply, "header", what));
  return Int64Field(*header, "revision", what);
}

Result<EtcdKeyValue> ParseKeyValue(const json& kv, const std::string& what) {
  EtcdKeyValue out;
  FERRY_ASSIGN_OR_RETURN(out.key, BytesField(kv, "key", what));
  FERRY_ASSIGN_OR_RETURN(out.value, BytesField(kv, "value", what));
  FERRY_ASSIGN_OR_RETURN(out.create_revision, Int64Field(kv, "create_revision", what));
  FERRY_ASSIGN_OR_RETURN(out.mod_revision, Int64Field(kv, "mod_revision", what));
  FERRY_ASSIGN_OR_RETURN(out.version, Int64Field(kv, "version", what));
  FERRY_ASSIGN_OR_RETURN(out.lease, Int64Field(kv, "lease", what));
  return out;
}

// The "kvs" of a range reply.
Result<std::vector<EtcdKeyValue>> ParseKeyValues(const json& reply, const std::string& what) {
  FERRY_ASSIGN_OR_RETURN(const json* kvs, ArrayField(reply, "kvs", what));
  std::vector<EtcdKeyValue> out;
  out.reserve(kvs->size());
  for (const json& kv : *kvs) {
    FERRY_ASSIGN_OR_RETURN(EtcdKeyValue parsed, ParseKeyValue(kv, what));
    out.push_back(std::move(parsed));
  }
  return out;
}

// Request bodies (also the ops inside a txn).
json KeyBody(const std::string& key, const std::string& range_end) {
  json body = json::object();
  body["key"] = Base64Encode(key);
  if (!range_end.empty()) body["range_end"] = Base64Encode(range_end);
  return body;
}

json PutBody(const std::string& key, const std::string& value, int64_t lease) {
  json body = KeyBody(key, "");
  body["value"] = Base64Encode(value);
  if (lease != 0) body["lease"] = lease;
  return body;
}

json OpBody(const EtcdOp& op) {
  json body = json::object();
  switch (op.type) {
    case EtcdOp::kPut:
      body["request_put"] = PutBody(op.key, op.value, op.lease);
      break;
    case EtcdOp::kDeleteRange:
      body["request_delete_range"] = KeyBody(op.key, op.range_end);
      break;
    case EtcdOp::kRange:
      body["request_range"] = KeyBody(op.key, op.range_end);
      break;
  }
  return body;
}

json CompareBody(const EtcdCompare& c) {
  static constexpr const char* kResults[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
  static constexpr const char* kTargets[] = {"CREATE", "MOD", "VERSION", "VALUE", "LEASE"};
  static constexpr const char* kFields[] = {"create_revision", "mod_revision", "version", "value",
                                            "lease"};
  json body = KeyBody(c.key, "");
  body["result"] = kResults[c.op];
  body["target"] = kTargets[c.target];
  if (c.target == EtcdCompare::kValue) {
    body["value"] = Base64Encode(c.value);
  } else {
    body[kFields[c.target]] = c.number;
  }
  return body;
}

// A POST of `body` to `path` on one endpoint; `receiver` gets the reply body and
// `*http_status` the reply's status as soon as its headers arrive. (The gateway sends an
// error reply chunked with a trailer, which cpp-httplib 0.11 fails to read after the
// body: the caller still has the status and the body.)
httplib::Request JsonPost(const std::string& path, const json& body,
                          httplib::ContentReceiverWithProgress receiver, int* http_status) {
  httplib::Request req;
  req.response_handler = [http_status](const httplib::Response& res) {
    *http_status = res.status;
    return true;
  };
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = std::move(receiver);
  return req;
}

Result<std::vector<HostPort>> ParseEndpoints(const std::string& text) {
  const std::string context = "bad etcd endpoints '" + text + "'";
  std::vector<HostPort> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",;", start);
    if (end == std::string::npos) end = text.size();
    std::string_view one = std::string_view(text).substr(start, end - start);
    for (std::string_view scheme : {"etcd://", "http://"}) {
      if (one.substr(0, scheme.size()) == scheme) one.remove_prefix(scheme.size());
    }
    if (one.empty()) {
      return InvalidArgumentError(context +
                                  ": empty entry (expected [etcd://]host:port[,host:port...])");
    }
    if (one.find('/') != std::string_view::npos) {
      return InvalidArgumentError(context + ": '" + std::string(one) +
                                  "' is not host:port (only etcd:// and http:// are accepted, "
                                  "without a path)");
    }
    auto hp = ParseHostPort(one, kDefaultEtcdPort);
    if (!hp.ok()) return hp.status().WithContext(context);
    out.push_back(std::move(hp).value());
    start = end + 1;
  }
  return out;
}

std::string DescribeEndpoints(const std::vector<HostPort>& endpoints) {
  std::string out = "etcd://";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (i > 0) out += ';';
    out += endpoints[i].ToString();
  }
  return out;
}

// A running watch: one thread that holds a stream to one endpoint at a time.
class EtcdWatchImpl final : public EtcdWatch {
 public:
  using OnEvents = std::function<void(const std::vector<EtcdWatchEvent>&, int64_t)>;
  using OnError = std::function<void(const Status&)>;

  EtcdWatchImpl(std::vector<HostPort> endpoints, size_t first, const std::string& key,
                const std::string& range_end, int64_t start_revision, OnEvents on_events,
                OnError on_error)
      : endpoints_(std::move(endpoints)),
        what_("etcd watch '" + key + "'"),
        create_(KeyBody(key, range_end)),
        next_revision_(start_revision),
        on_events_(std::move(on_events)),
        on_error_(std::move(on_error)) {
    thread_ = std::thread([this, first] { Run(first); });
  }

  ~EtcdWatchImpl() override {
    MutexLock lock(&mu_);
    cancelled_.store(true);
    cv_.SignalAll();  // ends a backoff wait
    // stop() only interrupts a request in flight, and the thread may be between
    // connecting and sending: repeat until the thread has seen `cancelled_`.
    while (!done_) {
      if (client_ != nullptr) client_->stop();
      cv_.WaitFor(&mu_, std::chrono::milliseconds(10));
    }
    lock.Unlock();
    thread_.join();
  }

 private:
  void Run(size_t idx) {
    auto backoff = kWatchMinBackoff;
    while (!cancelled_.load()) {
      bool established = false;
      Status why = StreamOnce(endpoints_[idx % endpoints_.size()], &established);
      if (cancelled_.load()) break;
      if (on_error_) on_error_(why);
      ++idx;  // reconnect to the next endpoint (the same one when there is only one)
      backoff = established ? kWatchMinBackoff : std::min(backoff * 2, kWatchMaxBackoff);
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, backoff, [this]() FERRY_REQUIRES(mu_) { return cancelled_.load(); });
    }
    MutexLock lock(&mu_);
    done_ = true;
    cv_.SignalAll();
  }

  // Runs one stream until it breaks; returns why (never OK).
  Status StreamOnce(const HostPort& ep, bool* established) {
    const std::string what = what_ + " at " + ep.ToString();
    httplib::Client client(ep.host, ep.port);
    internal::ApplyDeadline(client, Deadline::In(kWatchIdleTimeout), kWatchConnectTimeout);
    {
      MutexLock lock(&mu_);
      if (cancelled_.load()) return AbortedError(what + ": cancelled");
      client_ = &client;
    }
    json create = create_;
    if (next_revision_ > 0) create["start_revision"] = next_revision_;
    json body = json::object();
    body["create_request"] = std::move(create);

    std::string buffer;
    Status broke;
    auto receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      buffer.append(data, len);
      size_t newline;
      while ((newline = buffer.find('\n')) != std::string::npos) {
        broke = HandleMessage(std::string_view(buffer).substr(0, newline), what, established);
        buffer.erase(0, newline + 1);
        if (!broke.ok()) return false;
      }
      if (buffer.size() > kMaxWatchMessageBytes) {
        broke = UnavailableError(what + ": a watch message is larger than " +
                                 std::to_string(kMaxWatchMessageBytes) + " bytes");
        return false;
      }
      return !cancelled_.load();
    };
    int http_status = 0;
    auto res = client.send(JsonPost("/v3/watch", body, receiver, &http_status));
    {
      MutexLock lock(&mu_);
      client_ = nullptr;
    }
    if (!broke.ok()) return broke;
    if (http_status != 0 && http_status != 200) {
      return StatusFromEtcdError(http_status, buffer, what);
    }
    if (!res) return internal::StatusFromHttpError(res.error(), Deadline::Infinite(), what);
    if (!buffer.empty()) FERRY_RETURN_IF_ERROR(HandleMessage(buffer, what, established));
    return UnavailableError(what + ": etcd closed the watch stream");
  }

  // Handles one message of the stream. Non-OK: the stream must be dropped.
  Status HandleMessage(std::string_view line, const std::string& what, bool* established) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return OkStatus();
    FERRY_ASSIGN_OR_RETURN(json message, ParseObject(line, what));
    FERRY_RETURN_IF_ERROR(ErrorInReply(message, what));
    FERRY_ASSIGN_OR_RETURN(const json* result, ObjectField(message, "result", what));
    FERRY_ASSIGN_OR_RETURN(int64_t revision, HeaderRevision(*result, what));
    FERRY_ASSIGN_OR_RETURN(bool canceled, BoolField(*result, "canceled", what));
    FERRY_ASSIGN_OR_RETURN(int64_t compact_revision, Int64Field(*result, "compact_revision", what));
    if (canceled) {
      if (compact_revision > 0) {
        const int64_t wanted = next_revision_;
        next_revision_ = 0;  // resume from the newest revision
        return OutOfRangeError(what + ": revision " + std::to_string(wanted) +
                               " has been compacted (etcd keeps history from revision " +
                               std::to_string(compact_revision) +
                               "); resuming from the newest revision");
      }
      FERRY_ASSIGN_OR_RETURN(std::string reason, StringField(*result, "cancel_reason", what));
      return UnavailableError(what + ": etcd cancelled the watch" +
                              (reason.empty() ? "" : ": " + reason));
    }
    FERRY_ASSIGN_OR_RETURN(bool created, BoolField(*result, "created", what));
    if (created) {
      *established = true;
      // Watching "from now": a reconnect resumes after the revision the watch began at.
      if (next_revision_ <= 0) next_revision_ = revision + 1;
    }
    FERRY_ASSIGN_OR_RETURN(const json* events, ArrayField(*result, "events", what));
    std::vector<EtcdWatchEvent> batch;
    for (const json& e : *events) {
      EtcdWatchEvent event;
      FERRY_ASSIGN_OR_RETURN(std::string type, StringField(e, "type", what));
      if (type == "DELETE") {
        event.type = EtcdWatchEvent::kDelete;
      } else if (!type.empty() && type != "PUT") {
        return WrongType(what, "type", "PUT or DELETE");
      }
      FERRY_ASSIGN_OR_RETURN(const json* kv, ObjectField(e, "kv", what));
      FERRY_ASSIGN_OR_RETURN(event.kv, ParseKeyValue(*kv, what));
      if (!batch.empty() && event.kv.mod_revision < batch.back().kv.mod_revision) {
        return UnavailableError(what + ": events in the reply are not in revision order");
      }
      // After a reconnect etcd starts at next_revision_; never deliver an event twice.
      if (event.kv.mod_revision >= next_revision_) batch.push_back(std::move(event));
    }
    if (batch.empty()) return OkStatus();
    next_revision_ = batch.back().kv.mod_revision + 1;
    on_events_(batch, revision);
    return OkStatus();
  }

  const std::vector<HostPort> endpoints_;
  const std::string what_;
  const json create_;  // the create_request, less start_revision
  // Where the stream (re)starts: the revision after the last one delivered; 0: now.
  // Only the watch thread uses it.
  int64_t next_revision_;
  const OnEvents on_events_;
  const OnError on_error_;

  std::atomic<bool> cancelled_{false};
  Mutex mu_;
  CondVar cv_;
  httplib::Client* client_ FERRY_GUARDED_BY(mu_) = nullptr;  // the stream's client, to stop()
  bool done_ FERRY_GUARDED_BY(mu_) = false;                  // Run() has returned
  std::thread thread_;
};

}  // namespace

EtcdCompare EtcdCompare::CreateRevision(std::string key, Op op, int64_t revision) {
  return {
      .key = std::move(key), .target = kCreateRevision, .op = op, .number = revision, .value = {}};
}

EtcdCompare EtcdCompare::Value(std::string key, Op op, std::string value) {
  return {
      .key = std::move(key), .target = kValue, .op = op, .number = 0, .value = std::move(value)};
}

EtcdOp EtcdOp::Put(std::string key, std::string value, int64_t lease) {
  return {.type = kPut,
          .key = std::move(key),
          .range_end = {},
          .value = std::move(value),
          .lease = lease};
}

EtcdOp EtcdOp::Delete(std::string key, std::string range_end) {
  return {.type = kDeleteRange,
          .key = std::move(key),
          .range_end = std::move(range_end),
          .value = {},
          .lease = 0};
}

EtcdOp EtcdOp::Get(std::string key, std::string range_end) {
  EtcdOp op = Delete(std::move(key), std::move(range_end));  // the same fields
  op.type = kRange;
  return op;
}

struct EtcdClient::Impl {
  std::vector<HostPort> endpoints;
  std::string description;
  // Index of the endpoint that answered last; where the next call starts.
  std::atomic<size_t> preferred{0};

  // POSTs `body` to `api_path` with failover and returns the reply, a JSON object without
  // an "error". With `first_message`, only the first line of a streamed reply is read.
  Result<json> Call(const std::string& api_path, const json& body, const std::string& what,
                    Deadline deadline, bool first_message = false);
};

Result<json> EtcdClient::Impl::Call(const std::string& api_path, const json& body,
                                    const std::string& what, Deadline deadline,
                                    bool first_message) {
  const size_t n = endpoints.size();
  const size_t first = preferred.load(std::memory_order_relaxed) % n;
  std::string failures;
  for (size_t i = 0; i < n; ++i) {
    if (deadline.Expired()) {
      return DeadlineExceededError(what + ": no etcd endpoint answered before the deadline" +
                                   (failures.empty() ? "" : " (" + failures + ")"));
    }
    const size_t idx = (first + i) % n;
    const HostPort& ep = endpoints[idx];
    httplib::Client client(ep.host, ep.port);
    auto cap = deadline.IsInfinite() ? std::chrono::nanoseconds(std::chrono::seconds(5))
                                     : deadline.Remaining() / static_cast<int64_t>(n - i);
    internal::ApplyDeadline(client, deadline, cap);
    std::string reply;
    bool too_big = false;
    auto receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      if (reply.size() + len > kMaxReplyBytes) {
        too_big = true;
        return false;
      }
      reply.append(data, len);
      // A streamed reply (keepalive) has one message per line: stop after the first.
      return !(first_message && reply.find('\n') != std::string::npos);
    };
    int http_status = 0;
    auto res = client.send(JsonPost(api_path, body, receiver, &http_status));
    if (too_big) return ResourceExhaustedError(what + ": etcd's reply is too large");
    if (res) http_status = res->status;
    const bool got_first = first_message && reply.find('\n') != std::string::npos;
    const bool got_error = http_status != 0 && http_status != 200 && !reply.empty();
    if (!res && !got_first && !got_error) {
      if (internal::IsConnectFailure(res.error()) && !internal::NearlyExpired(deadline)) {
        if (!failures.empty()) failures += "; ";
        failures += ep.ToString() + ": " + httplib::to_string(res.error());
        continue;  // nothing reached this endpoint: try the next
      }
      return internal::StatusFromHttpError(res.error(), deadline,
                                           what + " at " + ep.ToString() + api_path);
    }
    preferred.store(idx, std::memory_order_relaxed);
    const std::string at = what + " at " + ep.ToString();
    if (http_status != 200) return StatusFromEtcdError(http_status, reply, at);
    if (got_first) reply.resize(reply.find('\n'));
    FERRY_ASSIGN_OR_RETURN(json j, ParseObject(reply, at));
    FERRY_RETURN_IF_ERROR(ErrorInReply(j, at));
    return j;
  }
  return UnavailableError(what + ": no etcd endpoint reachable (" + failures +
                          "); is etcd running at " + description + "?");
}

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

Result<std::unique_ptr<EtcdClient>> EtcdClient::Create(const std::string& endpoints) {
  FERRY_ASSIGN_OR_RETURN(std::vector<HostPort> parsed, ParseEndpoints(endpoints));
  auto impl = std::make_unique<Impl>();
  impl->description = DescribeEndpoints(parsed);
  impl->endpoints = std::move(parsed);
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
}

std::string EtcdClient::PrefixEnd(std::string_view prefix) {
  // The prefix with its last byte below 0xff incremented (trailing 0xff bytes dropped);
  // "\0" (all keys) when there is none.
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

Result<EtcdRange> EtcdClient::Range(const std::string& key, const std::string& range_end,
                                    int64_t limit, Deadline deadline, int64_t revision) {
  const std::string what = "etcd range '" + key + "'";
  json body = KeyBody(key, range_end);
  if (limit > 0) body["limit"] = limit;
  if (revision > 0) body["revision"] = revision;
  FERRY_ASSIGN_OR_RETURN(json reply, impl_->Call("/v3/kv/range", body, what, deadline));
  EtcdRange out;
  FERRY_ASSIGN_OR_RETURN(out.kvs, ParseKeyValues(reply, what));
  FERRY_ASSIGN_OR_RETURN(out.more, BoolField(reply, "more", what));
  FERRY_ASSIGN_OR_RETURN(out.revision, HeaderRevision(reply, what));
  return out;
}

Result<int64_t> EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease,
                                Deadline deadline) {
  const std::string what = "etcd put '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(json reply,
                         impl_->Call("/v3/kv/put", PutBody(key, value, lease), what, deadline));
  return HeaderRevision(reply, what);
}

Result<int64_t> EtcdClient::DeleteRange(const std::string& key, const std::string& range_end,
                                        Deadline deadline) {
  const std::string what = "etcd deleterange '" + key + "'";
  FERRY_ASSIGN_OR_RETURN(
      json reply, impl_->Call("/v3/kv/deleterange", KeyBody(key, range_end), what, deadline));
  return Int64Field(reply, "deleted", what);
}

Result<EtcdTxnResult> EtcdClient::Txn(const EtcdTxn& txn, Deadline deadline) {
  const std::string what = "etcd txn";
  json body = json::object();
  body["compare"] = json::array();
  for (const EtcdCompare& c : txn.compares) body["compare"].push_back(CompareBody(c));
  for (const auto& [name, ops] : {std::pair{"success", &txn.success}, {"failure", &txn.failure}}) {
    body[name] = json::array();
    for (const EtcdOp& op : *ops) body[name].push_back(OpBody(op));
  }
  FERRY_ASSIGN_OR_RETURN(json reply, impl_->Call("/v3/kv/txn", body, what, deadline));
  EtcdTxnResult out;
  FERRY_ASSIGN_OR_RETURN(out.succeeded, BoolField(reply, "succeeded", what));
  FERRY_ASSIGN_OR_RETURN(out.revision, HeaderRevision(reply, what));
  const std::vector<EtcdOp>& branch = out.succeeded ? txn.success : txn.failure;
  FERRY_ASSIGN_OR_RETURN(const json* responses, ArrayField(reply, "responses", what));
  if (responses->size() != branch.size()) {
    return UnavailableError(what + ": the reply has " + std::to_string(responses->size()) +
                            " responses for " + std::to_string(branch.size()) + " ops");
  }
  out.ranges.resize(branch.size());
  for (size_t i = 0; i < branch.size(); ++i) {
    if (branch[i].type != EtcdOp::kRange) continue;
    FERRY_ASSIGN_OR_RETURN(const json* range, ObjectField((*responses)[i], "response_range", what));
    FERRY_ASSIGN_OR_RETURN(out.ranges[i], ParseKeyValues(*range, what));
  }
  return out;
}

Result<EtcdLease> EtcdClient::LeaseGrant(std::chrono::seconds ttl, Deadline deadline) {
  const std::string what = "etcd lease grant";
  json body = json::object();
  body["TTL"] = ttl.count();
  FERRY_ASSIGN_OR_RETURN(json reply, impl_->Call("/v3/lease/grant", body, what, deadline));
  EtcdLease out;
  FERRY_ASSIGN_OR_RETURN(out.id, Int64Field(reply, "ID", what));
  FERRY_ASSIGN_OR_RETURN(int64_t granted, Int64Field(reply, "TTL", what));
  if (out.id == 0 || granted <= 0) {
    return UnavailableError(what + ": the reply has no lease ID or TTL");
  }
  out.ttl = std::chrono::seconds(granted);
  return out;
}

Result<std::chrono::seconds> EtcdClient::LeaseKeepAlive(int64_t lease_id, Deadline deadline) {
  const std::string what = "etcd lease keepalive " + std::to_string(lease_id);
  json body = json::object();
  body["ID"] = lease_id;
  FERRY_ASSIGN_OR_RETURN(json reply, impl_->Call("/v3/lease/keepalive", body, what, deadline,
                                                 /*first_message=*/true));
  if (!reply.contains("result")) return UnavailableError(what + ": the reply has no 'result'");
  FERRY_ASSIGN_OR_RETURN(const json* result, ObjectField(reply, "result", what));
  FERRY_ASSIGN_OR_RETURN(int64_t ttl, Int64Field(*result, "TTL", what));
  if (ttl <= 0) {
    return NotFoundError(what + ": lease " + std::to_string(lease_id) +
                         " has expired or was revoked");
  }
  return std::chrono::seconds(ttl);
}

Status EtcdClient::LeaseRevoke(int64_t lease_id, Deadline deadline) {
  const std::string what = "etcd lease revoke " + std::to_string(lease_id);
  json body = json::object();
  body["ID"] = lease_id;
  return impl_->Call("/v3/lease/revoke", body, what, deadline).status();
}

Status EtcdClient::Compact(int64_t revision, Deadline deadline) {
  const std::string what = "etcd compaction at revision " + std::to_string(revision);
  json body = json::object();
  body["revision"] = revision;
  return impl_->Call("/v3/kv/compaction", body, what, deadline).status();
}

Result<std::unique_ptr<EtcdWatch>> EtcdClient::Watch(
    const std::string& key, const std::string& range_end, int64_t start_revision,
    std::function<void(const std::vector<EtcdWatchEvent>&, int64_t revision)> on_events,
    std::function<void(const Status&)> on_error) {
  if (!on_events) return InvalidArgumentError("etcd watch '" + key + "': no event callback");
  return std::unique_ptr<EtcdWatch>(
      new EtcdWatchImpl(impl_->endpoints, impl_->preferred.load(std::memory_order_relaxed), key,
                        range_end, start_revision, std::move(on_events), std::move(on_error)));
}

const std::vector<HostPort>& EtcdClient::endpoints() const { return impl_->endpoints; }

std::string EtcdClient::Describe() const { return impl_->description; }

}  // namespace ferry::metadata
