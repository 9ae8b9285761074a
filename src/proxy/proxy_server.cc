#include "proxy/proxy_server.h"

#include <httplib.h>

#include <atomic>
#include <deque>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/json_limits.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "http/bearer_token.h"
#include "http/http_client_timeouts.h"
#include "http/http_server.h"
#include "proxy/backend_call.h"
#include "proxy/backend_pool.h"
#include "proxy/request_rewrite.h"

namespace ferry::proxy {
namespace {

void ReplyError(http::Response& res, int code, const std::string& message,
                const std::string& type) {
  res.Set(code, ErrorBody(message, type, code), "application/json");
}

// The error type of a status the HTTP layer answers itself.
std::string ErrorTypeFor(int status) {
  if (status == 408) return "timeout";
  if (status == 503) return "service_unavailable";
  if (status >= 500) return "internal_error";
  return "invalid_request_error";
}

// How one attempt routes a request: both halves (the normal case), or the whole request on
// one instance when no healthy instance of the other kind is left (degraded).
enum class Mode { kDisaggregated, kDecodeOnly, kPrefillOnly };

class ProxyServerImpl final : public ProxyServer {
 public:
  explicit ProxyServerImpl(const ProxyOptions& options)
      : options_(options), pool_(options), proxy_auth_(options.secret, "proxy") {}

  ~ProxyServerImpl() override { Stop(); }

  Status Start() {
    http::HttpServerOptions http_options;
    http_options.name = "proxy";
    http_options.worker_threads = options_.http_threads;
    http_options.limits = options_.http_limits;
    http_options.error_body = [](int status, std::string_view message) {
      return http::ErrorBody{ErrorBody(std::string(message), ErrorTypeFor(status), status),
                             "application/json"};
    };
    FERRY_ASSIGN_OR_RETURN(server_, http::HttpServer::Create(std::move(http_options)));
    server_->Route("POST", "/v1/completions", [this](const http::Request& q, http::Response& r) {
      Forward(q, r, "/v1/completions");
    });
    server_->Route("POST", "/v1/chat/completions",
                   [this](const http::Request& q, http::Response& r) {
                     Forward(q, r, "/v1/chat/completions");
                   });
    server_->Route("GET", "/v1/models", [this](const http::Request& q, http::Response& r) {
      if (Authorized(q, r)) Models(r);
    });
    server_->Route("GET", "/health", [this](const http::Request&, http::Response& r) {
      // Serving as long as one instance of either kind is healthy; "mode" says how.
      const bool p = pool_.HealthyCount(Role::kPrefill) > 0;
      const bool d = pool_.HealthyCount(Role::kDecode) > 0;
      nlohmann::json j = nlohmann::json::parse(pool_.DescribeJson());
      j["mode"] = p && d ? "disaggregated" : d ? "decode_only" : p ? "prefill_only" : "down";
      r.Set(p || d ? 200 : 503, j.dump(), "application/json");
    });
    server_->Route("GET", "/status", [this](const http::Request&, http::Response& r) {
      r.Set(200, pool_.DescribeJson(), "application/json");
    });
    server_->Route("GET", "/metrics", [this](const http::Request&, http::Response& r) {
      r.Set(200, MetricsText() + http::RenderPrometheus(server_->stats(), "proxy"),
            "text/plain; version=0.0.4");
    });
    pool_.Start();
    Status started = server_->Start(options_.host, options_.port);
    if (!started.ok()) return started.WithContext("proxy (pick another --port)");
    port_ = server_->port();
    FERRY_LOG_INFO("proxy listening on {}:{} ({} prefill, {} decode)", options_.host, port_,
                   options_.prefill.size(), options_.decode.size());
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  void Wait() override {
    MutexLock lock(&mu_);
    cv_.Wait(&mu_, [this]() FERRY_REQUIRES(mu_) { return stopped_; });
  }

  void Stop() override {
    if (server_) server_->Stop();  // idempotent; returns once the handlers have finished
    {
      MutexLock lock(&mu_);
      stopped_ = true;
    }
    cv_.SignalAll();
  }

 private:
  std::unique_ptr<httplib::Client> MakeClient(const Backend& b) const {
    auto c = std::make_unique<httplib::Client>(b.host, b.port);
    http::SetTimeouts(*c, options_.probe_timeout, options_.request_timeout);
    return c;
  }

  BackendCall::Timeouts CallTimeouts() const {
    return {options_.probe_timeout, options_.request_timeout};
  }

  // One attempt's calls: the instance whose answer the client gets, and (disaggregated) the
  // prefill half whose answer is not used.
  struct Attempt {
    Mode mode = Mode::kDisaggregated;
    Role answer_role = Role::kDecode;
    PickedBackend answer;
    std::optional<PickedBackend> prefill;
    std::shared_ptr<BackendCall> answer_call;
    std::shared_ptr<BackendCall> prefill_call;
  };

  // Picks instances (skipping the ones that failed this request) and starts the calls.
  // Errors: Unavailable when no instance can take the request.
  Result<Attempt> StartAttempt(const nlohmann::json& body, const std::string& path,
                               const httplib::Headers& headers,
                               const std::vector<size_t>& bad_prefill,
                               const std::vector<size_t>& bad_decode) {
    Attempt a;
    auto prefill = pool_.Pick(Role::kPrefill, bad_prefill);
    auto decode = pool_.Pick(Role::kDecode, bad_decode);
    if (!prefill && !decode) {
      return UnavailableError("no healthy prefill or decode instance (see GET /status)");
    }
    // n > 1, several prompts, prompt scoring: whole on one instance, a decoder if there is one.
    const bool whole = NeedsOneInstance(body);
    if (prefill && decode && !whole) {
      a.mode = Mode::kDisaggregated;
      a.answer = *decode;
      a.prefill = prefill;
      const std::string transfer_id = NewTransferId();
      const std::string bootstrap =
          "http://" + prefill->backend.host + ":" + std::to_string(prefill->backend.bootstrap_port);
      nlohmann::json decode_body =
          MakeDecodeRequest(body, transfer_id, bootstrap, prefill->engine_id);
      if (proxy_auth_.enabled()) {
        decode_body["kv_transfer_params"]["ferry_proxy_auth"] =
            proxy_auth_.Sign(ProxySignedFields(transfer_id, bootstrap, prefill->engine_id))
                .ToString();
      }
      a.prefill_call =
          BackendCall::Start(prefill->backend, path, headers,
                             MakePrefillRequest(body, transfer_id).dump(), CallTimeouts());
      a.answer_call =
          BackendCall::Start(decode->backend, path, headers, decode_body.dump(), CallTimeouts());
      return a;
    }
    // Degraded (or a request that needs one instance): the whole request on a decoder if
    // there is one, else on a prefill instance.
    a.mode = decode ? Mode::kDecodeOnly : Mode::kPrefillOnly;
    a.answer_role = decode ? Role::kDecode : Role::kPrefill;
    a.answer = decode ? *decode : *prefill;
    nlohmann::json plain = body;
    plain.erase("kv_transfer_params");
    a.answer_call =
        BackendCall::Start(a.answer.backend, path, headers, plain.dump(), CallTimeouts());
    if (whole && prefill && decode) return a;  // by choice, not degraded
    (a.mode == Mode::kDecodeOnly ? degraded_decode_only_ : degraded_prefill_only_)++;
    if (degraded_log_.exchange(true) == false) {
      FERRY_LOG_WARN("proxy: no healthy {} instance: serving requests whole on {} instances",
                     decode ? "prefill" : "decode", decode ? "decode" : "prefill");
    }
    return a;
  }

  // Counts a prefill half that failed (its answer is otherwise unused).
  void NotePrefill(const Attempt& a) {
    if (!a.prefill_call || !a.prefill) return;
    if (!a.prefill_call->error().empty() && a.prefill_call->error() != "cancelled") {
      prefill_failures_++;
      pool_.MarkUnhealthy(Role::kPrefill, a.prefill->index);
    } else if (a.prefill_call->status() != 0 && a.prefill_call->status() != 200) {
      prefill_failures_++;
    }
  }

  // False (with a 401 in `res`) when an API key is set and `req` does not carry it.
  bool Authorized(const http::Request& req, http::Response& res) {
    if (http::HasBearerToken(req, options_.api_key)) return true;
    ReplyError(res, 401, "invalid or missing API key: send \"Authorization: Bearer <key>\"",
               "authentication_error");
    res.SetHeader("WWW-Authenticate", "Bearer");
    return false;
  }

  void Forward(const http::Request& req, http::Response& res, const std::string& path) {
    if (!Authorized(req, res)) return;
    requests_total_++;
    auto parsed = ParseJson(req.body, {.max_bytes = 32u << 20, .max_depth = 64});
    if (!parsed.ok() || !parsed->is_object()) {
      errors_total_++;
      return ReplyError(res, 400,
                        parsed.ok() ? "request body is not a JSON object"
                                    : "request body: " + parsed.status().message(),
                        "invalid_request_error");
    }
    const nlohmann::json& body = *parsed;
    httplib::Headers headers;
    if (req.HasHeader("X-Request-Id")) headers.emplace("X-Request-Id", req.Header("X-Request-Id"));
    // The instances check the same key (the client's header is not passed on as such).
    if (!options_.api_key.empty()) {
      headers.emplace("Authorization", http::BearerHeaderValue(options_.api_key));
    }
    if (req.HasHeader("X-Request-Id")) res.SetHeader("X-Request-Id", req.Header("X-Request-Id"));

    // At most two attempts: a failure before the client got anything is retried once on
    // other instances (a dead or paused decoder, a prefill whose failure the decoder could
    // not hide).
    std::vector<size_t> bad_prefill, bad_decode;
    std::string last_error = "no attempt made";
    int last_code = 503;
    const Deadline deadline = Deadline::In(options_.request_timeout);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (attempt > 0) retries_total_++;
      auto started = StartAttempt(body, path, headers, bad_prefill, bad_decode);
      if (!started.ok()) {
        if (attempt == 0) {
          errors_total_++;
          return ReplyError(res, 503, started.status().message(), "service_unavailable");
        }
        break;
      }
      Attempt a = std::move(*started);
      auto exclude_answerer = [&] {
        (a.answer_role == Role::kDecode ? bad_decode : bad_prefill).push_back(a.answer.index);
      };
      // A backend the health checks give up on while we wait (paused, hung) is left for
      // another one: the client has received nothing yet.
      auto gave_up = [&] {
        return !pool_.IsHealthy(a.answer_role, a.answer.index) || req.ClientGone();
      };
      BackendCall::Wait w = a.answer_call->WaitHeaders(deadline, gave_up);
      if (w == BackendCall::Wait::kTimedOut) {
        errors_total_++;
        NotePrefill(a);
        return ReplyError(res, 504, a.answer.backend.url + " did not answer in time", "timeout");
      }
      if (w == BackendCall::Wait::kGaveUp) {
        if (req.ClientGone()) return;  // nobody to answer
        failovers_total_++;
        last_code = 503;
        last_error = a.answer.backend.url + " stopped answering (health checks fail)";
        exclude_answerer();
        continue;
      }
      if (w == BackendCall::Wait::kFailed) {
        pool_.MarkUnhealthy(a.answer_role, a.answer.index);
        last_code = 502;
        last_error = a.answer.backend.url + " failed: " + a.answer_call->error();
        exclude_answerer();
        NotePrefill(a);
        continue;
      }
      const int status = a.answer_call->status();
      const std::string content_type = a.answer_call->content_type();
      if (status >= 500 && attempt == 0) {
        // The instance could not serve it (stopping, KV load failed under the fail policy):
        // try elsewhere, leaving out the prefill too when its half failed.
        std::string answer = a.answer_call->TakeAll(Deadline::In(options_.probe_timeout));
        // Whose fault: a prefill half that failed too (it often ends a moment after the
        // decoder gave up on it) is the one to leave out.
        if (a.prefill_call) a.prefill_call->WaitDone(Deadline::In(options_.probe_timeout));
        NotePrefill(a);
        last_code = status;
        last_error = a.answer.backend.url + " answered " + std::to_string(status) + ": " +
                     answer.substr(0, 300);
        const bool prefill_failed =
            a.prefill_call && (!a.prefill_call->error().empty() ||
                               (a.prefill_call->status() != 0 && a.prefill_call->status() != 200));
        if (prefill_failed) {
          bad_prefill.push_back(a.prefill->index);
        } else {
          exclude_answerer();
        }
        continue;
      }
      Relay(std::move(a), status, content_type, deadline, res);
      return;
    }
    errors_total_++;
    ReplyError(res, last_code, last_error,
               last_code == 502 ? "bad_gateway" : "service_unavailable");
  }

  // Sends the answering instance's response to the client: whole answers and errors with
  // their status and body, SSE chunk by chunk.
  void Relay(Attempt a, int status, const std::string& content_type, Deadline deadline,
             http::Response& res) {
    const bool streaming = content_type.find("text/event-stream") != std::string::npos;
    if (status != 200 || !streaming) {
      if (status != 200) errors_total_++;
      res.Set(status, a.answer_call->TakeAll(deadline),
              content_type.empty() ? "application/json" : content_type);
      NotePrefill(a);
      return;
    }
    res.SetHeader("Cache-Control", "no-cache");
    auto shared = std::make_shared<Attempt>(std::move(a));
    res.Stream("text/event-stream", [this, shared](http::ChunkWriter& out) {
      BackendCall& call = *shared->answer_call;
      std::string chunk;
      std::string failure;
      while (call.NextChunks(std::chrono::milliseconds(100), &chunk)) {
        if (!chunk.empty() && !out.Write(chunk)) break;  // the client left, or we stop
        if (chunk.empty() && !out.ok()) break;
        // A backend that stopped answering mid-stream (paused, hung): end the stream with
        // an error rather than let the client wait.
        if (chunk.empty() && !pool_.IsHealthy(shared->answer_role, shared->answer.index) &&
            SteadyClock::now() - call.last_activity() > options_.probe_timeout) {
          failure = shared->answer.backend.url + " stopped answering mid-stream";
          break;
        }
      }
      if (failure.empty() && !call.error().empty() && out.ok()) {
        failure = "decode instance failed mid-stream: " + call.error();
        pool_.MarkUnhealthy(shared->answer_role, shared->answer.index);
      }
      if (!failure.empty()) {
        errors_total_++;
        out.Write("data: " + ErrorBody(failure, "bad_gateway", 502) + "\n\n");
      }
      call.Cancel();
      NotePrefill(*shared);
    });
  }

  void Models(http::Response& res) {
    Role role = Role::kDecode;
    auto backend = pool_.Pick(Role::kDecode);
    if (!backend) {  // degraded: any instance serves the same model
      role = Role::kPrefill;
      backend = pool_.Pick(Role::kPrefill);
    }
    if (!backend) return ReplyError(res, 503, "no healthy instance", "service_unavailable");
    auto client = MakeClient(backend->backend);
    httplib::Headers headers;
    if (!options_.api_key.empty()) {
      headers.emplace("Authorization", http::BearerHeaderValue(options_.api_key));
    }
    auto r = client->Get("/v1/models", headers);
    if (!r) {
      pool_.MarkUnhealthy(role, backend->index);
      return ReplyError(res, 502, backend->backend.url + " did not answer /v1/models",
                        "bad_gateway");
    }
    res.Set(r->status, r->body, "application/json");
  }

  std::string MetricsText() const {
    std::string out;
    auto line = [&](const char* name, const char* help, const char* type, double v) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
             name + " " + std::to_string(v) + "\n";
    };
    line("ferry_proxy_requests_total", "Completion requests received.", "counter",
         requests_total_.load());
    line("ferry_proxy_errors_total", "Requests answered with an error.", "counter",
         errors_total_.load());
    line("ferry_proxy_prefill_failures_total", "Prefill calls that failed.", "counter",
         prefill_failures_.load());
    line("ferry_proxy_retries_total",
         "Requests sent a second time, elsewhere, after a failure before any answer.", "counter",
         retries_total_.load());
    line("ferry_proxy_failovers_total",
         "Requests taken away from an instance whose health checks failed while they waited.",
         "counter", failovers_total_.load());
    out +=
        "# HELP ferry_proxy_degraded_total Requests served whole on one instance because no "
        "healthy instance of the other kind was left.\n"
        "# TYPE ferry_proxy_degraded_total counter\n"
        "ferry_proxy_degraded_total{mode=\"decode_only\"} " +
        std::to_string(degraded_decode_only_.load()) +
        "\n"
        "ferry_proxy_degraded_total{mode=\"prefill_only\"} " +
        std::to_string(degraded_prefill_only_.load()) + "\n";
    line("ferry_proxy_healthy_prefill", "Healthy prefill instances.", "gauge",
         pool_.HealthyCount(Role::kPrefill));
    line("ferry_proxy_healthy_decode", "Healthy decode instances.", "gauge",
         pool_.HealthyCount(Role::kDecode));
    return out;
  }

  const ProxyOptions options_;
  BackendPool pool_;
  std::unique_ptr<http::HttpServer> server_;  // after pool_: destroyed (stopped) before it
  uint16_t port_ = 0;
  Mutex mu_;
  CondVar cv_;
  bool stopped_ FERRY_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> requests_total_{0};
  std::atomic<uint64_t> errors_total_{0};
  std::atomic<uint64_t> prefill_failures_{0};
  std::atomic<uint64_t> retries_total_{0};
  std::atomic<uint64_t> failovers_total_{0};
  std::atomic<uint64_t> degraded_decode_only_{0};
  std::atomic<uint64_t> degraded_prefill_only_{0};
  std::atomic<bool> degraded_log_{false};  // logged once
  MessageAuth proxy_auth_;                 // signs decode requests' bootstrap addresses
};

}  // namespace

Result<std::unique_ptr<ProxyServer>> ProxyServer::Create(const ProxyOptions& options) {
  if (options.prefill.empty()) return InvalidArgumentError("proxy needs at least one --prefill");
  if (options.decode.empty()) return InvalidArgumentError("proxy needs at least one --decode");
  auto proxy = std::make_unique<ProxyServerImpl>(options);
  FERRY_RETURN_IF_ERROR(proxy->Start());
  return std::unique_ptr<ProxyServer>(std::move(proxy));
}

}  // namespace ferry::proxy
