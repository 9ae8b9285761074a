// OpenAiServer over real HTTP (cpp-httplib client) with the engine on a fake model: the
// whole server surface without depending on a real checkpoint.
#include "server/openai_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "../http/raw_http.h"
#include "common/deadline.h"
#include "openai_server_fixture.h"

namespace ferry::server {
namespace {

using nlohmann::json;

TEST_F(OpenAiServerTest, CompletionNonStreaming) {
  auto res =
      Post("/v1/completions", R"({"model":"fake","prompt":"Hello","max_tokens":5,"temperature":0})",
           {{"X-Request-Id", "req-42"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("X-Request-Id"), "req-42");
  json j = json::parse(res->body);
  EXPECT_EQ(j["id"], "cmpl-req-42");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"].get<std::string>().size(), 5u);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_TRUE(j.contains("kv_transfer_params"));
  EXPECT_TRUE(j["kv_transfer_params"].is_null());
}

TEST_F(OpenAiServerTest, ChatStreamingWithUsage) {
  auto res = Post("/v1/chat/completions",
                  R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6,
                      "temperature":0,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  bool done = false;
  auto events = SseEvents(res->body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  std::string text;
  std::string finish;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    text += events[i]["choices"][0]["delta"]["content"].get<std::string>();
    if (!events[i]["choices"][0]["finish_reason"].is_null())
      finish = events[i]["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text.size(), 6u);
  EXPECT_EQ(finish, "length");
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 6);
  // Streaming and non-streaming give the same greedy text.
  auto full =
      Post("/v1/chat/completions",
           R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"temperature":0})");
  ASSERT_TRUE(full);
  EXPECT_EQ(json::parse(full->body)["choices"][0]["message"]["content"], text);
}

TEST_F(OpenAiServerTest, ErrorsAreOpenAiShaped) {
  auto bad = Post("/v1/completions", "{not json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["type"], "BadRequestError");
  auto neg = Post("/v1/completions", R"({"prompt":"x","max_tokens":-3})");
  EXPECT_EQ(neg->status, 400);
  EXPECT_EQ(json::parse(neg->body)["error"]["param"], "max_tokens");
  auto model = Post("/v1/completions", R"({"model":"nope","prompt":"x"})");
  EXPECT_EQ(model->status, 404);
  EXPECT_EQ(json::parse(model->body)["error"]["code"], 404);
  std::string long_prompt(2000, 'a');
  auto too_long = Post("/v1/completions", json({{"prompt", long_prompt}}).dump());
  EXPECT_EQ(too_long->status, 400);
  EXPECT_EQ(json::parse(too_long->body)["error"]["param"], "prompt");
}

TEST_F(OpenAiServerTest, DeeplyNestedBodyIs400AndServerSurvives) {
  // 100,000 nested brackets (200 KB) used to overflow the stack and crash serve.
  std::string deep = R"({"prompt":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto res = Post("/v1/completions", deep);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("nested deeper"), std::string::npos) << res->body;
  auto ok = Post("/v1/completions", R"({"prompt":"abc","max_tokens":2})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(OpenAiServerTest, ReusedRequestIdsAreServedSideBySide) {
  // The engine used to refuse the second request with a duplicate id (and the connector
  // state of the first was overwritten by it).
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", server_->port());
      auto res = c.Post("/v1/completions", {{"X-Request-Id", "same-id"}},
                        R"({"prompt":"abc","max_tokens":8})", "application/json");
      if (res && res->status == 200 && json::parse(res->body)["id"] == "cmpl-same-id") ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
}

TEST_F(OpenAiServerTest, MinTokensAboveMaxTokensIs400) {
  auto res = Post("/v1/completions", R"({"prompt":"abc","max_tokens":2,"min_tokens":3})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["param"], "min_tokens");
}

TEST_F(OpenAiServerTest, ModelsHealthMetrics) {
  auto models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "fake");
  EXPECT_EQ(client_->Get("/health")->status, 200);
  ASSERT_EQ(Post("/v1/completions", R"({"prompt":"abc","max_tokens":3})")->status, 200);
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* name :
       {"ferry_num_requests_running", "ferry_num_requests_waiting", "ferry_kv_blocks_used",
        "ferry_kv_blocks_total 256", "ferry_prompt_tokens_total 3",
        "ferry_generation_tokens_total 3", "ferry_time_to_first_token_seconds_bucket",
        "ferry_inter_token_latency_seconds_count 2",
        "ferry_http_connections_accepted_total{server=\"serve\"}",
        "ferry_http_open_connections{server=\"serve\"}"}) {
    EXPECT_NE(metrics->body.find(name), std::string::npos) << name << "\n" << metrics->body;
  }
}

TEST_F(OpenAiServerTest, ClientDisconnectMidStreamFreesBlocks) {
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt":"Hello there","max_tokens":900,"stream":true,"ignore_eos":true})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  httplib::Response res;
  httplib::Error err;
  client_->send(req, res, err);  // cancelled by the receiver
  EXPECT_GE(chunks, 3);
  const Deadline d = Deadline::In(std::chrono::seconds(10));
  while (engine_->Stats().kv_blocks_used != 0 && !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(engine_->Stats().kv_blocks_used, 0);
  EXPECT_EQ(engine_->Stats().num_running, 0);
  // It was aborted, not run to its 900 tokens.
  EXPECT_LT(engine_->Stats().generation_tokens_total, 900);
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("ferry_request_success_total{finished_reason=\"abort\"} 1"),
            std::string::npos)
      << metrics->body;
}

// Regression: a non-streaming client that disconnected kept its request running to the
// end (its KV blocks held) because nothing watched the connection while it waited.
TEST_F(OpenAiServerTest, ClientDisconnectWhileWaitingAbortsTheRequest) {
  {
    http::testing::RawConnection c(server_->port());
    const std::string body = R"({"prompt":"Hello there","max_tokens":900,"ignore_eos":true})";
    ASSERT_TRUE(
        c.Send("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: "
               "application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body));
    const Deadline started = Deadline::In(std::chrono::seconds(5));
    while (engine_->Stats().num_running == 0 && !started.Expired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(engine_->Stats().num_running, 1);
  }  // the client goes away while its answer is being generated
  const Deadline d = Deadline::In(std::chrono::seconds(10));
  while (engine_->Stats().num_running != 0 && !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine_->Stats().num_running, 0);
  EXPECT_EQ(engine_->Stats().kv_blocks_used, 0);
  EXPECT_LT(engine_->Stats().generation_tokens_total, 900);  // aborted, not finished
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("ferry_request_success_total{finished_reason=\"abort\"} 1"),
            std::string::npos);
}

// Regression: 2,000 idle connections delayed serve's answer to 154 s (cpp-httplib queued
// connections behind its 64 worker threads).
TEST_F(OpenAiServerTest, IdleConnectionsDoNotDelayServe) {
  ASSERT_GE(http::testing::RaiseFdLimit(8192), 4200u) << "needs 4,200 file descriptors";
  auto idle = http::testing::OpenIdleConnections(static_cast<uint16_t>(server_->port()), 2000);
  for (const auto& c : idle) ASSERT_TRUE(c->valid());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all accepted
  const auto start = std::chrono::steady_clock::now();
  auto res = Post("/v1/completions", R"({"prompt":"Hello","max_tokens":5})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

// Regression: 64 connections trickling their headers held all 64 workers of serve.
TEST_F(OpenAiServerTest, SlowHeaderClientsDoNotStopServe) {
  http::testing::SlowHeaderClients slow(static_cast<uint16_t>(server_->port()), 100);
  ASSERT_EQ(slow.connected(), 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  auto res = Post("/v1/completions", R"({"prompt":"Hello","max_tokens":5})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST_F(OpenAiServerTest, CreateRejectsBadHttpLimits) {
  OpenAiServerOptions so;
  so.served_model_name = "fake";
  so.http_limits.max_connections = 0;
  EXPECT_EQ(OpenAiServer::Create(so, engine_.get()).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(OpenAiServerTest, HugeBodyIsRefusedWith413) {
  size_t rss_growth = 0;
  int64_t answer_ms = 0;
  EXPECT_EQ(http::testing::HugeBodyStatus(static_cast<uint16_t>(server_->port()),
                                          "POST /v1/completions", &rss_growth, &answer_ms),
            413);
  EXPECT_LT(answer_ms, 500);
  EXPECT_LT(rss_growth, size_t{8} << 20);
}

TEST_F(OpenAiServerTest, MalformedContentLengthGets400) {
  http::testing::RawResponse r = http::testing::MalformedContentLength(
      static_cast<uint16_t>(server_->port()), "POST /v1/completions");
  EXPECT_EQ(r.status, 400);
  json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_EQ(body["error"]["type"], "BadRequestError");
  EXPECT_EQ(body["error"]["code"], 400);
}

}  // namespace
}  // namespace ferry::server
