#include "server/openai_server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <random>

#include "common/deadline.h"
#include "common/http_listen.h"
#include "common/log.h"
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

void Send(httplib::Response& res, const Reply& reply) {
  res.status = reply.status;
  res.set_content(reply.body, reply.content_type.c_str());
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
  s->InstallRoutes();
  return s;
}

OpenAiServer::OpenAiServer(const OpenAiServerOptions& options, engine::LlmEngine* engine)
    : options_(options), engine_(engine), http_(std::make_unique<httplib::Server>()) {
  handler_ctx_.engine = engine_;
  handler_ctx_.metrics = &metrics_;
  handler_ctx_.served_model_name = options_.served_model_name;
  handler_ctx_.request_timeout = options_.request_timeout;
  handler_ctx_.kv_transfer_params = options_.kv_transfer_params;
  handler_ctx_.prepare_kv_transfer = options_.prepare_kv_transfer;
  handler_ctx_.abandon_kv_transfer = options_.abandon_kv_transfer;
  handler_ctx_.stopping = &stopping_;
}

OpenAiServer::~OpenAiServer() { Stop(); }

void OpenAiServer::InstallRoutes() {
  const int threads = options_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_keep_alive_max_count(1000);
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(10, 0);
  http_->set_payload_max_length(64 << 20);
  auto completion = [this](ApiKind kind) {
    return [this, kind](const httplib::Request& req, httplib::Response& res) {
      std::string rid = req.get_header_value("X-Request-Id");
      if (rid.empty()) rid = NewRequestId();
      res.set_header("X-Request-Id", rid);
      Reply reply;
      std::shared_ptr<SseStream> stream =
          HandleCompletion(handler_ctx_, kind, req.body, rid, &reply);
      if (stream == nullptr) {
        Send(res, reply);
        return;
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [stream](size_t, httplib::DataSink& sink) {
            std::string bytes;
            const bool more = stream->Pump(std::chrono::milliseconds(100), &bytes);
            if (!bytes.empty() && !sink.write(bytes.data(), bytes.size())) return false;
            if (!more) sink.done();
            return true;
          },
          [stream](bool success) {
            // Runs when the response ends; a client that left mid-stream lands here.
            stream->Cancel();
          });
    };
  };
  http_->Post("/v1/completions", completion(ApiKind::kCompletion));
  http_->Post("/v1/chat/completions", completion(ApiKind::kChat));

  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json model = {{"id", options_.served_model_name},
                            {"object", "model"},
                            {"created", NowUnixSeconds()},
                            {"owned_by", "ferry"},
                            {"root", options_.served_model_name},
                            {"parent", nullptr},
                            {"max_model_len", engine_->max_model_len()}};
    res.set_content(Dump({{"object", "list"}, {"data", nlohmann::json::array({model})}}),
                    "application/json");
  });
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.status = engine_->alive() && !stopping_.load() ? 200 : 503;
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text = metrics_.Render(engine_->Stats());
    if (options_.extra_metrics) text += options_.extra_metrics();
    res.set_content(text, "text/plain; version=0.0.4");
  });
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string msg =
        res.status == 404 ? "no route for " + req.method + " " + req.path : "request failed";
    res.set_content(Dump(ErrorJson(res.status, msg, "")), "application/json");
  });
}

Status OpenAiServer::Start() {
  if (listener_.joinable()) return FailedPreconditionError("server already started");
  // http::Listen binds without SO_REUSEPORT (a second server on the same port fails
  // instead of sharing it) and with a deep listen backlog.
  auto port = http::Listen(*http_, options_.host, static_cast<uint16_t>(options_.port), &listener_);
  if (!port.ok()) return UnavailableError(port.status().message() + " (pick another --port)");
  bound_port_ = *port;
  FERRY_LOG_INFO("serving {} on http://{}:{}", options_.served_model_name, options_.host,
                 bound_port_);
  return OkStatus();
}

void OpenAiServer::Stop() {
  stopping_ = true;
  if (listener_.joinable()) {
    http_->stop();
    listener_.join();
  }
}

}  // namespace ferry::server
