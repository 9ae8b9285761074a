// ProxyServer against small in-process HTTP backends that record what they receive. The
// end-to-end run against real `ferry serve` instances lives in tests/e2e.
#include "proxy/proxy_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "../http/raw_http.h"
#include "common/message_auth.h"

namespace ferry::proxy {
namespace {

// An HTTP server on a free 127.0.0.1 port, run on its own thread.
class TestHttp {
 public:
  TestHttp() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestHttp() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  uint16_t port() const { return static_cast<uint16_t>(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// Records request bodies; answers completions as configured.
struct Instance {
  TestHttp http;
  TestHttp bootstrap;  // prefill only
  std::mutex mu;
  std::vector<nlohmann::json> bodies;
  std::vector<std::string> authorizations;  // the Authorization header of every request
  std::atomic<bool> healthy{true};
  std::atomic<int> status{200};
  std::atomic<int> delay_ms{0};  // before answering a completion (a slow or paused instance)
  bool stream_sse = false;
  std::string bootstrap_secret;  // set before the proxy starts

  Instance() {
    http.server().Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      r.status = healthy ? 200 : 503;
    });
    http.server().Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) {
      {
        std::lock_guard lock(mu);
        authorizations.push_back(q.get_header_value("Authorization"));
      }
      r.set_content(R"({"object":"list","data":[{"id":"tiny"}]})", "application/json");
    });
    auto handler = [this](const httplib::Request& q, httplib::Response& r) {
      auto body = nlohmann::json::parse(q.body);
      {
        std::lock_guard lock(mu);
        bodies.push_back(body);
        authorizations.push_back(q.get_header_value("Authorization"));
      }
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
      if (status != 200) {
        r.status = status;
        r.set_content(R"({"error":{"message":"prompt too long","code":400}})", "application/json");
        return;
      }
      if (body.value("stream", false)) {
        r.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& s) {
          for (const char* piece :
               {"data: {\"t\":\"a\"}\n\n", "data: {\"t\":\"b\"}\n\n", "data: [DONE]\n\n"}) {
            s.write(piece, std::strlen(piece));
          }
          s.done();
          return true;
        });
        return;
      }
      r.set_content(R"({"choices":[{"text":"answer"}]})", "application/json");
    };
    http.server().Post("/v1/completions", handler);
    http.server().Post("/v1/chat/completions", handler);
    bootstrap.server().Get("/query", [this](const httplib::Request& q, httplib::Response& r) {
      r.set_content(R"({"0":{"engine_id":"eng-p","worker_addr":{"0":{"0":"tcp://x:1"}}}})",
                    "application/json");
      if (!bootstrap_secret.empty()) {  // as a BootstrapServer with the secret answers
        MessageAuth auth(bootstrap_secret, "bootstrap");
        auto tag = AuthTag::Parse(q.get_header_value(kAuthHeader));
        if (!tag.ok() || !auth.Verify(HttpAuthMessage("GET", "/query", ""), *tag).ok()) {
          r.status = 401;
          return;
        }
        r.set_header(kAuthReplyHeader,
                     auth.SignReply(tag->nonce, HttpAuthMessage("200", "", r.body)));
      }
    });
  }

  Backend AsBackend() {
    Backend b;
    b.host = "127.0.0.1";
    b.port = http.port();
    b.url = "http://127.0.0.1:" + std::to_string(b.port);
    b.bootstrap_port = bootstrap.port();
    return b;
  }
  size_t count() {
    std::lock_guard lock(mu);
    return bodies.size();
  }
};

// A port that was free a moment ago (bind to 0, read it back, close).
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class ProxyServerTest : public ::testing::Test {
 protected:
  void StartProxy(std::vector<Instance*> prefill, std::vector<Instance*> decode,
                  const std::string& secret = "", const std::string& api_key = "") {
    ProxyOptions o;
    o.secret = secret;
    o.api_key = api_key;
    o.host = "127.0.0.1";
    o.port = FreePort();
    o.health_interval = std::chrono::milliseconds(100);
    o.probe_timeout = std::chrono::milliseconds(500);
    o.request_timeout = std::chrono::milliseconds(5000);
    for (auto* p : prefill) o.prefill.push_back(p->AsBackend());
    for (auto* d : decode) o.decode.push_back(d->AsBackend());
    auto proxy = ProxyServer::Create(o);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", proxy_->port());
    client_->set_read_timeout(5, 0);
  }
  httplib::Result Post(const nlohmann::json& body, const char* path = "/v1/completions") {
    return client_->Post(path, body.dump(), "application/json");
  }

  std::unique_ptr<ProxyServer> proxy_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ProxyServerTest, SendsRewrittenRequestsToBothAndReturnsTheDecoderAnswer) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = Post({{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 5}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(nlohmann::json::parse(res->body)["choices"][0]["text"], "answer");
  // The prefill call runs concurrently; give it a moment to land.
  for (int i = 0; i < 200 && p.count() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(p.count(), 1u);
  ASSERT_EQ(d.count(), 1u);
  const auto& pk = p.bodies[0]["kv_transfer_params"];
  const auto& dk = d.bodies[0]["kv_transfer_params"];
  EXPECT_EQ(p.bodies[0]["max_tokens"], 1);
  EXPECT_EQ(pk["do_remote_decode"], true);
  EXPECT_EQ(dk["do_remote_prefill"], true);
  EXPECT_EQ(pk["transfer_id"], dk["transfer_id"]);
  EXPECT_EQ(dk["remote_engine_id"], "eng-p");
  EXPECT_EQ(dk["remote_bootstrap_addr"], "http://127.0.0.1:" + std::to_string(p.bootstrap.port()));
  EXPECT_EQ(d.bodies[0]["max_tokens"], 5);
}

TEST_F(ProxyServerTest, StreamsSseWithTheRightContentType) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = Post({{"model", "tiny"}, {"prompt", "hello"}, {"stream", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  EXPECT_EQ(res->body, "data: {\"t\":\"a\"}\n\ndata: {\"t\":\"b\"}\n\ndata: [DONE]\n\n");
}

TEST_F(ProxyServerTest, DecoderErrorBecomesTheSameHttpError) {
  Instance p, d;
  d.status = 400;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = Post({{"model", "tiny"}, {"prompt", "x"}, {"stream", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("prompt too long"), std::string::npos);
}

TEST_F(ProxyServerTest, BrokenJsonIs400) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = client_->Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(d.count(), 0u);
}

TEST_F(ProxyServerTest, UnhealthyInstancesLeaveRotationAndComeBack) {
  Instance p, d1, d2;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d1, &d2}));
  d1.healthy = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // a few probe rounds
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Post({{"prompt", "x"}})->status, 200);
  EXPECT_EQ(d1.count(), 0u);
  EXPECT_EQ(d2.count(), 4u);
  d1.healthy = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Post({{"prompt", "x"}})->status, 200);
  EXPECT_EQ(d1.count(), 2u);
}

TEST_F(ProxyServerTest, NoHealthyPrefillServesRequestsWholeOnADecoder) {
  // The proxy used to answer 503 to everything while a healthy decoder could prefill itself.
  Instance p, d;
  p.healthy = false;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);  // degraded, but serving
  auto res = Post({{"prompt", "x"}, {"max_tokens", 3}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_EQ(d.count(), 1u);
  EXPECT_FALSE(d.bodies[0].contains("kv_transfer_params"));  // a plain request
  EXPECT_EQ(d.bodies[0]["max_tokens"], 3);
  EXPECT_EQ(p.count(), 0u);
  EXPECT_NE(
      client_->Get("/metrics")->body.find("ferry_proxy_degraded_total{mode=\"decode_only\"} 1"),
      std::string::npos);
  p.healthy = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(Post({{"prompt", "x"}})->status, 200);
  EXPECT_EQ(d.bodies.back()["kv_transfer_params"]["do_remote_prefill"], true);
}

TEST_F(ProxyServerTest, NoHealthyDecodeServesRequestsWholeOnAPrefill) {
  Instance p, d;
  d.healthy = false;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = Post({{"prompt", "x"}, {"max_tokens", 4}, {"stream", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("[DONE]"), std::string::npos);
  ASSERT_EQ(p.count(), 1u);
  EXPECT_FALSE(p.bodies[0].contains("kv_transfer_params"));
  EXPECT_EQ(p.bodies[0]["max_tokens"], 4);  // not cut to 1: it serves the whole request
  EXPECT_EQ(p.bodies[0]["stream"], true);
}

TEST_F(ProxyServerTest, NothingHealthyIs503) {
  Instance p, d;
  p.healthy = false;
  d.healthy = false;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  EXPECT_EQ(client_->Get("/health")->status, 503);
  auto res = Post({{"prompt", "x"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
}

TEST_F(ProxyServerTest, ServerErrorIsRetriedOnceElsewhere) {
  Instance p, d1, d2;
  d1.status = 503;  // e.g. stopping, or its KV load failed under the fail policy
  d2.status = 503;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d1, &d2}));
  auto res = Post({{"prompt", "x"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);  // both failed: the second answer is the client's
  EXPECT_EQ(d1.count() + d2.count(), 2u);
  d2.status = 200;
  for (int i = 0; i < 4; ++i) {
    res = Post({{"prompt", "x"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);  // whichever is tried first, d2 answers
  }
  std::string metrics = client_->Get("/metrics")->body;
  EXPECT_NE(metrics.find("ferry_proxy_retries_total"), std::string::npos);
  EXPECT_NE(metrics.find("ferry_http_requests_total{server=\"proxy\"}"), std::string::npos);
}

TEST_F(ProxyServerTest, PausedDecoderFailsOverWithinSeconds) {
  Instance p, d1, d2;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d1, &d2}));
  d1.delay_ms = 4000;  // paused: accepts, never answers in time ...
  d1.healthy = false;  // ... and fails its health probes
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {  // one of the two goes to d1 first, unless probes beat it
    auto res = Post({{"prompt", "x"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3000));
  EXPECT_GE(d2.count(), 2u);
}

TEST_F(ProxyServerTest, DecodeRequestsCarryASignedBootstrapAddressWithASecret) {
  Instance p, d;
  p.bootstrap_secret = "k";
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}, "k"));
  ASSERT_EQ(Post({{"prompt", "x"}})->status, 200);
  ASSERT_EQ(d.count(), 1u);
  const auto& kv = d.bodies[0]["kv_transfer_params"];
  auto tag = AuthTag::Parse(kv["ferry_proxy_auth"].get<std::string>());
  ASSERT_TRUE(tag.ok());
  MessageAuth decoder("k", "proxy");
  EXPECT_TRUE(decoder
                  .Verify(ProxySignedFields(kv["transfer_id"].get<std::string>(),
                                            kv["remote_bootstrap_addr"].get<std::string>(),
                                            kv["remote_engine_id"].get<std::string>()),
                          *tag)
                  .ok());
}

TEST_F(ProxyServerTest, BootstrapWithoutTheSecretIsNotAHealthyPrefill) {
  Instance p, d;  // p's bootstrap server answers unsigned
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}, "k"));
  ASSERT_EQ(Post({{"prompt", "x"}})->status, 200);
  ASSERT_EQ(d.count(), 1u);
  EXPECT_FALSE(d.bodies[0].contains("kv_transfer_params"));  // served whole (degraded)
}

TEST_F(ProxyServerTest, ModelsComeFromADecoder) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = client_->Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("tiny"), std::string::npos);
}

TEST_F(ProxyServerTest, ApiKeyIsCheckedAndForwardedToBothInstances) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}, "", "sk-test"));
  const nlohmann::json body = {{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 2}};
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    auto none = client_->Post(path, body.dump(), "application/json");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_EQ(nlohmann::json::parse(none->body)["error"]["code"], 401);
    auto wrong = client_->Post(path, {{"Authorization", "Bearer sk-other"}}, body.dump(),
                               "application/json");
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
  }
  EXPECT_EQ(p.count() + d.count(), 0u);  // refused before any instance was called
  EXPECT_EQ(client_->Get("/v1/models")->status, 401);
  EXPECT_EQ(client_->Get("/health")->status, 200);
  EXPECT_EQ(client_->Get("/metrics")->status, 200);

  auto ok = client_->Post("/v1/completions", {{"Authorization", "Bearer sk-test"}}, body.dump(),
                          "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  for (int i = 0; i < 200 && p.count() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto models = client_->Get("/v1/models", {{"Authorization", "bearer sk-test"}});
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  std::lock_guard lp(p.mu);
  std::lock_guard ld(d.mu);
  ASSERT_EQ(p.authorizations.size(), 1u);
  EXPECT_EQ(p.authorizations[0], "Bearer sk-test");
  ASSERT_EQ(d.authorizations.size(), 2u);  // the completion and /v1/models
  EXPECT_EQ(d.authorizations[0], "Bearer sk-test");
  EXPECT_EQ(d.authorizations[1], "Bearer sk-test");
}

TEST_F(ProxyServerTest, RequestsForSeveralChoicesGoWholeToADecoder) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  for (const nlohmann::json& body :
       {nlohmann::json{{"prompt", "x"}, {"n", 3}},
        nlohmann::json{{"prompt", {"a", "b"}}, {"max_tokens", 2}},
        nlohmann::json{{"prompt", "x"}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}}}) {
    auto res = Post(body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << body.dump();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(p.count(), 0u);
  std::lock_guard ld(d.mu);
  ASSERT_EQ(d.bodies.size(), 3u);
  for (const auto& b : d.bodies) EXPECT_FALSE(b.contains("kv_transfer_params")) << b.dump();
  EXPECT_EQ(d.bodies[1]["prompt"], nlohmann::json({"a", "b"}));
}

TEST_F(ProxyServerTest, WithoutAnApiKeyNoAuthorizationIsSent) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  auto res = client_->Post("/v1/completions", {{"Authorization", "Bearer client-secret"}},
                           nlohmann::json({{"prompt", "x"}}).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  std::lock_guard ld(d.mu);
  ASSERT_EQ(d.authorizations.size(), 1u);
  EXPECT_EQ(d.authorizations[0], "");  // a client's own header is not passed on
}

TEST_F(ProxyServerTest, DeadDecoderIsRetriedNotAHang) {
  Instance p;
  auto d = std::make_unique<Instance>();
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {d.get()}));
  d.reset();  // the decoder goes away between probes
  auto res = Post({{"prompt", "x"}, {"max_tokens", 2}});
  ASSERT_TRUE(res);
  // Retried once: with no decoder left the prefill serves it whole.
  EXPECT_EQ(res->status, 200) << res->body;
  bool plain = false;
  {
    std::lock_guard lock(p.mu);
    for (const auto& b : p.bodies) plain |= !b.contains("kv_transfer_params");
  }
  EXPECT_TRUE(plain);
}

// Regression: 8 connections trickling their headers used to hold all 8 of cpp-httplib's
// worker threads, and the proxy stopped answering.
TEST_F(ProxyServerTest, SlowHeaderClientsDoNotStopTheProxy) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  http::testing::SlowHeaderClients slow(proxy_->port(), 100);
  ASSERT_EQ(slow.connected(), 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // all are mid-headers
  const auto start = std::chrono::steady_clock::now();
  auto res = Post({{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 5}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// Regression: the proxy had no body limit; a 1 GiB body took it to 7.6 GiB RSS.
TEST_F(ProxyServerTest, HugeBodyIsRefusedWith413) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  size_t rss_growth = 0;
  int64_t answer_ms = 0;
  EXPECT_EQ(http::testing::HugeBodyStatus(proxy_->port(), "POST /v1/completions", &rss_growth,
                                          &answer_ms),
            413);
  EXPECT_LT(answer_ms, 500);
  EXPECT_LT(rss_growth, size_t{8} << 20);
  EXPECT_EQ(d.count(), 0u);  // nothing was forwarded
}

// Regression: a malformed Content-Length closed the connection without an answer.
TEST_F(ProxyServerTest, MalformedContentLengthGets400) {
  Instance p, d;
  ASSERT_NO_FATAL_FAILURE(StartProxy({&p}, {&d}));
  http::testing::RawResponse r =
      http::testing::MalformedContentLength(proxy_->port(), "POST /v1/completions");
  EXPECT_EQ(r.status, 400);
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["code"], 400);
}

}  // namespace
}  // namespace ferry::proxy
