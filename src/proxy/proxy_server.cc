#include "proxy/proxy_server.h"

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/log.h"
#include "http/http_client_timeouts.h"
#include "http/http_server.h"
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

// The decoder's answer, produced by a relay thread and consumed by the client's handler.
// The destructor cancels the backend calls and joins both threads.
struct Relay {
  std::mutex mu;
  std::condition_variable cv;
  bool have_headers = false;       // GUARDED_BY(mu)
  int status = 0;                  // GUARDED_BY(mu)
  std::string content_type;        // GUARDED_BY(mu)
  std::deque<std::string> chunks;  // GUARDED_BY(mu)
  bool done = false;               // GUARDED_BY(mu)
  std::string error;               // GUARDED_BY(mu): transport error, "" if none
  std::atomic<bool> cancelled{false};

  std::unique_ptr<httplib::Client> decode_client;
  std::unique_ptr<httplib::Client> prefill_client;
  std::thread decode_thread;
  std::thread prefill_thread;

  ~Relay() {
    cancelled = true;
    if (decode_client) decode_client->stop();
    if (decode_thread.joinable()) decode_thread.join();
    // The prefill call is bounded by its own timeout; its answer is not used.
    if (prefill_thread.joinable()) prefill_thread.join();
  }

  // Waits for the decoder's status line. False if the deadline passed first.
  bool WaitHeaders(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return have_headers || done; });
  }
  // Waits for the whole body (non-streaming answers and errors).
  std::string TakeAll(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [&] { return done; });
    std::string body;
    for (auto& c : chunks) body += c;
    chunks.clear();
    return body;
  }
};

class ProxyServerImpl final : public ProxyServer {
 public:
  explicit ProxyServerImpl(const ProxyOptions& options) : options_(options), pool_(options) {}

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
    server_->Route("GET", "/v1/models",
                   [this](const http::Request&, http::Response& r) { Models(r); });
    server_->Route("GET", "/health", [this](const http::Request&, http::Response& r) {
      bool ok = pool_.HealthyCount(Role::kPrefill) > 0 && pool_.HealthyCount(Role::kDecode) > 0;
      r.Set(ok ? 200 : 503, pool_.DescribeJson(), "application/json");
    });
    server_->Route("GET", "/status", [this](const http::Request&, http::Response& r) {
      r.Set(200, pool_.DescribeJson(), "application/json");
    });
    server_->Route("GET", "/metrics", [this](const http::Request&, http::Response& r) {
      r.Set(200, MetricsText(), "text/plain; version=0.0.4");
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
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return stopped_; });
  }

  void Stop() override {
    if (server_) server_->Stop();  // idempotent; returns once the handlers have finished
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::unique_ptr<httplib::Client> MakeClient(const Backend& b) const {
    auto c = std::make_unique<httplib::Client>(b.host, b.port);
    http::SetTimeouts(*c, options_.probe_timeout, options_.request_timeout);
    return c;
  }

  void Forward(const http::Request& req, http::Response& res, const std::string& path) {
    requests_total_++;
    auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      errors_total_++;
      return ReplyError(res, 400, "request body is not a JSON object", "invalid_request_error");
    }
    auto prefill = pool_.Pick(Role::kPrefill);
    auto decode = pool_.Pick(Role::kDecode);
    if (!prefill || !decode) {
      errors_total_++;
      return ReplyError(res, 503,
                        std::string("no healthy ") + (!prefill ? "prefill" : "decode") +
                            " instance (see GET /status)",
                        "service_unavailable");
    }
    const std::string transfer_id = NewTransferId();
    const std::string bootstrap =
        "http://" + prefill->backend.host + ":" + std::to_string(prefill->backend.bootstrap_port);
    httplib::Headers headers;
    if (req.HasHeader("X-Request-Id")) headers.emplace("X-Request-Id", req.Header("X-Request-Id"));

    auto relay = std::make_shared<Relay>();
    relay->prefill_client = MakeClient(prefill->backend);
    relay->decode_client = MakeClient(decode->backend);

    std::string prefill_body = MakePrefillRequest(body, transfer_id).dump();
    size_t prefill_idx = prefill->index;
    // The threads hold a raw pointer: the Relay's owners (this handler, then the streaming
    // provider) outlive them, because ~Relay joins them.
    Relay* rp = relay.get();
    relay->prefill_thread = std::thread([this, rp, path, headers, prefill_body, prefill_idx] {
      Relay* relay = rp;
      auto r = relay->prefill_client->Post(path, headers, prefill_body, "application/json");
      if (!r) {
        prefill_failures_++;
        pool_.MarkUnhealthy(Role::kPrefill, prefill_idx);
      } else if (r->status != 200) {
        prefill_failures_++;
        FERRY_LOG_WARN("proxy: prefill answered {} for {}: {}", r->status, path,
                       r->body.substr(0, 200));
      }
    });

    std::string decode_body =
        MakeDecodeRequest(body, transfer_id, bootstrap, prefill->engine_id).dump();
    size_t decode_idx = decode->index;
    relay->decode_thread = std::thread([this, rp, path, headers, decode_body, decode_idx] {
      Relay* relay = rp;
      httplib::Request dreq;
      dreq.method = "POST";
      dreq.path = path;
      dreq.headers = headers;
      dreq.body = decode_body;
      dreq.set_header("Content-Type", "application/json");
      dreq.response_handler = [relay](const httplib::Response& r) {
        std::lock_guard lock(relay->mu);
        relay->have_headers = true;
        relay->status = r.status;
        relay->content_type = r.get_header_value("Content-Type");
        relay->cv.notify_all();
        return !relay->cancelled;
      };
      dreq.content_receiver = [relay](const char* data, size_t n, uint64_t, uint64_t) {
        std::lock_guard lock(relay->mu);
        relay->chunks.emplace_back(data, n);
        relay->cv.notify_all();
        return !relay->cancelled;
      };
      auto r = relay->decode_client->send(dreq);
      std::lock_guard lock(relay->mu);
      if (!r && !relay->cancelled) {
        relay->error = httplib::to_string(r.error());
        pool_.MarkUnhealthy(Role::kDecode, decode_idx);
      }
      relay->done = true;
      relay->cv.notify_all();
    });

    if (!relay->WaitHeaders(options_.request_timeout)) {
      errors_total_++;
      return ReplyError(res, 504, "decode instance did not answer in time", "timeout");
    }
    int status;
    std::string content_type, error;
    {
      std::lock_guard lock(relay->mu);
      status = relay->status;
      content_type = relay->content_type;
      error = relay->have_headers ? "" : relay->error;
    }
    if (!error.empty() || status == 0) {
      errors_total_++;
      return ReplyError(res, 502, "decode instance " + decode->backend.url + " failed: " + error,
                        "bad_gateway");
    }
    if (req.HasHeader("X-Request-Id")) res.SetHeader("X-Request-Id", req.Header("X-Request-Id"));
    bool streaming = content_type.find("text/event-stream") != std::string::npos;
    if (status != 200 || !streaming) {
      // Whole answers, and every error, pass through with the decoder's status and body.
      if (status != 200) errors_total_++;
      res.Set(status, relay->TakeAll(options_.request_timeout),
              content_type.empty() ? "application/json" : content_type);
      return;
    }
    res.SetHeader("Cache-Control", "no-cache");
    res.Stream("text/event-stream", [relay](http::ChunkWriter& out) {
      std::unique_lock lock(relay->mu);
      while (true) {
        relay->cv.wait_for(lock, std::chrono::milliseconds(100),
                           [&] { return !relay->chunks.empty() || relay->done; });
        while (!relay->chunks.empty()) {
          std::string c = std::move(relay->chunks.front());
          relay->chunks.pop_front();
          lock.unlock();
          if (!out.Write(c)) {  // client went away, or the proxy stops
            relay->cancelled = true;
            return;
          }
          lock.lock();
        }
        if (relay->done) {
          if (!relay->error.empty()) {
            // The decoder died mid-stream: say so in-band rather than cutting silently.
            std::string msg = "data: " +
                              ErrorBody("decode instance failed mid-stream: " + relay->error,
                                        "bad_gateway", 502) +
                              "\n\n";
            lock.unlock();
            out.Write(msg);
          }
          break;
        }
        if (!out.ok()) break;  // the client left while the decoder was silent
      }
      relay->cancelled = true;
    });
  }

  void Models(http::Response& res) {
    auto decode = pool_.Pick(Role::kDecode);
    if (!decode) return ReplyError(res, 503, "no healthy decode instance", "service_unavailable");
    auto client = MakeClient(decode->backend);
    auto r = client->Get("/v1/models");
    if (!r) {
      pool_.MarkUnhealthy(Role::kDecode, decode->index);
      return ReplyError(res, 502, "decode instance did not answer /v1/models", "bad_gateway");
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
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> requests_total_{0};
  std::atomic<uint64_t> errors_total_{0};
  std::atomic<uint64_t> prefill_failures_{0};
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
