#include "connector/bootstrap_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "../http/raw_http.h"

#include "common/message_auth.h"

namespace ferry::connector {
namespace {

class BootstrapServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = BootstrapServer::Create({.host = "127.0.0.1", .port = 0});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_connection_timeout(std::chrono::seconds(5));
    client_->set_read_timeout(std::chrono::seconds(5));
  }

  int Register(const nlohmann::json& body, std::string* answer = nullptr) {
    auto res = client_->Post("/register", body.dump(), "application/json");
    if (!res) return -1;
    if (answer) *answer = res->body;
    return res->status;
  }

  std::unique_ptr<BootstrapServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(BootstrapServerTest, RegisterThenQueryReturnsTheTable) {
  nlohmann::json reg = {{"engine_id", "eng-a"},
                        {"dp_rank", 0},
                        {"tp_rank", 0},
                        {"pp_rank", 0},
                        {"addr", "tcp://127.0.0.1:5555"}};
  std::string answer;
  ASSERT_EQ(Register(reg, &answer), 200);
  EXPECT_EQ(nlohmann::json::parse(answer)["status"], "ok");
  reg["tp_rank"] = 1;
  reg["addr"] = "tcp://127.0.0.1:5556";
  ASSERT_EQ(Register(reg), 200);

  auto res = client_->Get("/query");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto j = nlohmann::json::parse(res->body);
  EXPECT_EQ(j["0"]["engine_id"], "eng-a");
  EXPECT_EQ(j["0"]["worker_addr"]["0"]["0"], "tcp://127.0.0.1:5555");
  EXPECT_EQ(j["0"]["worker_addr"]["1"]["0"], "tcp://127.0.0.1:5556");

  auto table = BootstrapTableFromJson(res->body);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->at(0).worker_addr.at(1).at(0), "tcp://127.0.0.1:5556");
}

TEST_F(BootstrapServerTest, HugeRanksAreRefusedNotTruncated) {
  // 2^63 used to be read as rank 0 and overwrite the real rank 0.
  for (const char* body :
       {R"({"engine_id":"e","dp_rank":9223372036854775808,"addr":"tcp://127.0.0.1:1"})",
        R"({"engine_id":"e","tp_rank":4294967296,"addr":"tcp://127.0.0.1:1"})",
        R"({"engine_id":"e","pp_rank":-1,"addr":"tcp://127.0.0.1:1"})"}) {
    auto res = client_->Post("/register", body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << body;
  }
  EXPECT_TRUE(server_->Snapshot().empty());
}

TEST_F(BootstrapServerTest, DeeplyNestedBodyIs400) {
  // 30,000 levels: under the 64 KiB body limit, so the JSON limit is what answers.
  std::string deep = R"({"engine_id":)" + std::string(30000, '[') + std::string(30000, ']') + "}";
  auto res = client_->Post("/register", deep, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST(BootstrapServerAuthTest, SecretGuardsRegisterAndQuery) {
  auto server = BootstrapServer::Create({.host = "127.0.0.1", .port = 0, .secret = "k"});
  ASSERT_TRUE(server.ok());
  httplib::Client c("127.0.0.1", (*server)->port());
  const std::string body = R"({"engine_id":"e","addr":"tcp://127.0.0.1:9"})";
  // Unauthenticated: refused, nothing registered.
  auto res = c.Post("/register", body, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(c.Get("/query")->status, 401);
  EXPECT_TRUE((*server)->Snapshot().empty());
  // Signed: accepted, and the reply is signed for this request.
  MessageAuth auth("k", "bootstrap");
  AuthTag tag = auth.Sign(HttpAuthMessage("POST", "/register", body));
  res = c.Post("/register", {{kAuthHeader, tag.ToString()}}, body, "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(auth.VerifyReply(tag.nonce, HttpAuthMessage("200", "", res->body),
                               res->get_header_value(kAuthReplyHeader))
                  .ok());
  // The same signed request again is a replay.
  res = c.Post("/register", {{kAuthHeader, tag.ToString()}}, body, "application/json");
  EXPECT_EQ(res->status, 401);
  // A signature over another body does not carry over.
  AuthTag other = auth.Sign(HttpAuthMessage("POST", "/register", "{}"));
  res = c.Post("/register", {{kAuthHeader, other.ToString()}}, body, "application/json");
  EXPECT_EQ(res->status, 401);
}

TEST_F(BootstrapServerTest, SameAddressTwiceIsOk) {
  nlohmann::json reg = {{"engine_id", "e"},
                        {"dp_rank", 0},
                        {"tp_rank", 0},
                        {"pp_rank", 0},
                        {"addr", "tcp://127.0.0.1:1"}};
  EXPECT_EQ(Register(reg), 200);
  EXPECT_EQ(Register(reg), 200);
}

TEST_F(BootstrapServerTest, ConflictsAreRejectedWith400) {
  nlohmann::json reg = {{"engine_id", "e"},
                        {"dp_rank", 0},
                        {"tp_rank", 0},
                        {"pp_rank", 0},
                        {"addr", "tcp://127.0.0.1:1"}};
  ASSERT_EQ(Register(reg), 200);
  std::string answer;
  reg["addr"] = "tcp://127.0.0.1:2";  // same rank, another address
  EXPECT_EQ(Register(reg, &answer), 400);
  EXPECT_NE(answer.find("already registered"), std::string::npos) << answer;
  reg["addr"] = "tcp://127.0.0.1:1";
  reg["engine_id"] = "other";  // same dp rank, another engine
  EXPECT_EQ(Register(reg, &answer), 400);
  EXPECT_NE(answer.find("engine"), std::string::npos) << answer;
  // The table is unchanged by the refused calls.
  EXPECT_EQ(server_->Snapshot().at(0).worker_addr.at(0).at(0), "tcp://127.0.0.1:1");
}

TEST_F(BootstrapServerTest, MalformedBodiesAreRejectedWith400) {
  for (const char* body : {"not json", "[]", "{\"engine_id\":\"e\"}",
                           "{\"engine_id\":\"e\",\"addr\":\"x\",\"tp_rank\":\"zero\"}",
                           "{\"engine_id\":\"e\",\"addr\":\"x\",\"dp_rank\":-1}"}) {
    auto res = client_->Post("/register", body, "application/json");
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, 400) << body;
  }
  auto res = client_->Get("/query");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "{}");
}

// Regression: 8 connections trickling their headers held every worker of the bootstrap
// server; the proxy's /query probes then timed out and it answered 503 to everything.
TEST_F(BootstrapServerTest, SlowHeaderClientsDoNotStopTheBootstrapServer) {
  http::testing::SlowHeaderClients slow(server_->port(), 64);
  ASSERT_EQ(slow.connected(), 64);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  auto res = client_->Get("/query");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

// Regression: the bootstrap server had no body limit.
TEST_F(BootstrapServerTest, HugeBodyIsRefusedWith413) {
  size_t rss_growth = 0;
  int64_t answer_ms = 0;
  EXPECT_EQ(
      http::testing::HugeBodyStatus(server_->port(), "POST /register", &rss_growth, &answer_ms),
      413);
  EXPECT_LT(answer_ms, 500);
  EXPECT_LT(rss_growth, size_t{8} << 20);
}

// Regression: a malformed Content-Length closed the connection without an answer.
TEST_F(BootstrapServerTest, MalformedContentLengthGets400) {
  http::testing::RawResponse r =
      http::testing::MalformedContentLength(server_->port(), "POST /register");
  EXPECT_EQ(r.status, 400);
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_TRUE(body["error"].is_string());
}

TEST(BootstrapTableTest, RejectsMalformedQueryAnswers) {
  for (const char* text : {"", "[1]", "{\"x\":{}}", "{\"0\":{\"engine_id\":\"e\"}}",
                           "{\"0\":{\"engine_id\":\"e\",\"worker_addr\":{\"0\":{\"0\":5}}}}"}) {
    EXPECT_FALSE(BootstrapTableFromJson(text).ok()) << text;
  }
}

// vLLM's mooncake proxy at f1b4b28 reads /query as {engine_id: {dp: {tp: {pp: addr}}}}
// (bootstrap_query_format "by_engine_id"); a decoder reads both shapes.
TEST(BootstrapServerQueryFormatTest, ByEngineIdAnswersTheOlderShape) {
  auto server = BootstrapServer::Create(
      {.host = "127.0.0.1", .port = 0, .query_format = BootstrapQueryFormat::kByEngineId});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  httplib::Client client("127.0.0.1", (*server)->port());
  nlohmann::json reg = {{"engine_id", "eng-a"},
                        {"dp_rank", 0},
                        {"tp_rank", 0},
                        {"pp_rank", 0},
                        {"addr", "tcp://127.0.0.1:5555"}};
  auto posted = client.Post("/register", reg.dump(), "application/json");
  ASSERT_TRUE(posted);
  ASSERT_EQ(posted->status, 200);
  auto res = client.Get("/query");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto j = nlohmann::json::parse(res->body);
  EXPECT_EQ(j, nlohmann::json::parse(R"({"eng-a":{"0":{"0":{"0":"tcp://127.0.0.1:5555"}}}})"));
  auto table = BootstrapTableFromJson(res->body);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->at(0).engine_id, "eng-a");
  EXPECT_EQ(table->at(0).worker_addr.at(0).at(0), "tcp://127.0.0.1:5555");
}

TEST(BootstrapTableTest, BothShapesRoundTrip) {
  BootstrapTable t;
  ASSERT_TRUE(ApplyRegistration(t, "e0", 0, 0, 0, "tcp://a:1").ok());
  ASSERT_TRUE(ApplyRegistration(t, "e0", 0, 1, 0, "tcp://a:2").ok());
  ASSERT_TRUE(ApplyRegistration(t, "e1", 1, 0, 0, "tcp://b:1").ok());
  for (auto format : {BootstrapQueryFormat::kByDpRank, BootstrapQueryFormat::kByEngineId}) {
    auto back = BootstrapTableFromJson(BootstrapTableToJson(t, format));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_EQ(back->size(), 2u);
    EXPECT_EQ(back->at(0).engine_id, "e0");
    EXPECT_EQ(back->at(0).worker_addr, t.at(0).worker_addr);
    EXPECT_EQ(back->at(1).engine_id, "e1");
  }
  // one dp rank under two engine ids, an engine without ranks
  EXPECT_FALSE(BootstrapTableFromJson(R"({"a":{"0":{}},"b":{"0":{}}})").ok());
  EXPECT_FALSE(BootstrapTableFromJson(R"({"a":{}})").ok());
  EXPECT_TRUE(ParseBootstrapQueryFormat("by_engine_id").ok());
  EXPECT_TRUE(ParseBootstrapQueryFormat("by_dp_rank").ok());
  EXPECT_FALSE(ParseBootstrapQueryFormat("v0").ok());
}

TEST(BootstrapServerCreateTest, PortInUseIsAClearError) {
  auto first = BootstrapServer::Create({.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.ok());
  auto second = BootstrapServer::Create({.host = "127.0.0.1", .port = (*first)->port()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace ferry::connector
