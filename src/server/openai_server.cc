#include "server/openai_server.h"

#include <random>

#include "common/deadline.h"
#include "common/log.h"
#include "http/bearer_token.h"
#include "http/http_server.h"
#include "server/completion_handler.h"

namespace ferry::server {
namespace {

std::string NewRequestId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  char buf[40];
  snprintf(buf, sizeof(buf), "%08llx%08llx", static_cast<unsigned long long>(salt & 0xffffffff),
           static_cast<unsigned long long>(counter.fetch_add(1)));
  return buf;
}

void Send(http::Response& res, const Reply& reply) {
  res.Set(reply.status, reply.body, reply.content_type);
}

}  // namespace

Result<std::unique_ptr<OpenAiServer>> OpenAiServer::Create(const OpenAiServerOptions& options,
                                                           engine::LlmEngine* engine) {
  if (engine == nullptr) return InvalidArgumentError("the server needs an engine");
  if (options.served_model_name.empty()) {
    return InvalidArgumentError("the server needs a served model name");
  }
  if (options.http_threads < 2 || options.port < 0 || options.port > 65535) {
    return InvalidArgumentError("http_threads must be >= 2 and port in [0, 65535]");
  }
  auto s = std::unique_ptr<OpenAiServer>(new OpenAiServer(options, engine));
  http::HttpServerOptions http_options;
  http_options.name = "serve";
  http_options.worker_threads = options.http_threads;
  http_options.limits = options.http_limits;
  http_options.error_body = [](int status, std::string_view message) {
    return http::ErrorBody{Dump(ErrorJson(status, std::string(message), "")), "application/json"};
  };
  auto http = http::HttpServer::Create(std::move(http_options));
  if (!http.ok()) return http.status().WithContext("serve");
  s->http_ = std::move(http).value();
  s->InstallRoutes();
  return s;
}

OpenAiServer::OpenAiServer(const OpenAiServerOptions& options, engine::LlmEngine* engine)
    : options_(options), engine_(engine) {
  handler_ctx_.engine = engine_;
  handler_ctx_.metrics = &metrics_;
  handler_ctx_.served_model_name = options_.served_model_name;
  handler_ctx_.request_timeout = options_.request_timeout;
  handler_ctx_.stopping = &stopping_;
  handler_ctx_.default_seed = options_.default_seed;
}

bool OpenAiServer::Authorized(const http::Request& req, http::Response& res) const {
  if (http::HasBearerToken(req, options_.api_key)) return true;
  res.Set(
      401,
      Dump(ErrorJson(401, "invalid or missing API key: send \"Authorization: Bearer <key>\"", "")),
      "application/json");
  res.SetHeader("WWW-Authenticate", "Bearer");
  return false;
}

OpenAiServer::~OpenAiServer() { Stop(); }

void OpenAiServer::InstallRoutes() {
  auto completion = [this](ApiKind kind) {
    return [this, kind](const http::Request& req, http::Response& res) {
      if (!Authorized(req, res)) return;
      std::string rid = req.Header("X-Request-Id");
      if (rid.empty()) rid = NewRequestId();
      res.SetHeader("X-Request-Id", rid);
      Reply reply;
      std::shared_ptr<SseStream> stream = HandleCompletion(
          handler_ctx_, kind, req.body, rid, [&req] { return req.ClientGone(); }, &reply);
      if (stream == nullptr) return Send(res, reply);
      res.SetHeader("Cache-Control", "no-cache");
      res.Stream("text/event-stream", [stream](http::ChunkWriter& out) {
        std::string bytes;
        bool more = true;
        while (more && out.ok()) {
          more = stream->Pump(std::chrono::milliseconds(100), &bytes);
          if (!bytes.empty() && !out.Write(bytes)) break;
        }
        // A client that left mid-stream (or a stopping server) lands here with `more`.
        stream->Cancel();
      });
    };
  };
  http_->Route("POST", "/v1/completions", completion(ApiKind::kCompletion));
  http_->Route("POST", "/v1/chat/completions", completion(ApiKind::kChat));

  http_->Route("GET", "/v1/models", [this](const http::Request& req, http::Response& res) {
    if (!Authorized(req, res)) return;
    nlohmann::json model = {{"id", options_.served_model_name},
                            {"object", "model"},
                            {"created", NowUnixSeconds()},
                            {"owned_by", "ferry"},
                            {"root", options_.served_model_name},
                            {"parent", nullptr},
                            {"max_model_len", engine_->max_model_len()}};
    res.Set(200, Dump({{"object", "list"}, {"data", nlohmann::json::array({model})}}),
            "application/json");
  });
  http_->Route("GET", "/health", [this](const http::Request&, http::Response& res) {
    res.status = engine_->alive() && !stopping_.load() ? 200 : 503;
  });
  http_->Route("GET", "/metrics", [this](const http::Request&, http::Response& res) {
    std::string text = metrics_.Render(engine_->Stats());
    if (const engine::KvConnector* c = engine_->kv_connector()) text += c->MetricsText();
    if (options_.extra_metrics) text += options_.extra_metrics();
    text += http::RenderPrometheus(http_->stats(), "serve");
    res.Set(200, std::move(text), "text/plain; version=0.0.4");
  });
}

Status OpenAiServer::Start() {
  // HttpServer binds without SO_REUSEPORT (a second server on the same port fails instead
  // of sharing it) and with a deep listen backlog.
  Status started = http_->Start(options_.host, static_cast<uint16_t>(options_.port));
  if (started.code() == StatusCode::kFailedPrecondition) return started;
  if (!started.ok()) return UnavailableError(started.message() + " (pick another --port)");
  bound_port_ = http_->port();
  FERRY_LOG_INFO("serving {} on http://{}:{}", options_.served_model_name, options_.host,
                 bound_port_);
  return OkStatus();
}

void OpenAiServer::Stop() {
  stopping_ = true;  // handlers waiting for the engine give up; streams end with an error
  if (http_) http_->Stop();
}

}  // namespace ferry::server
