// The HTTP store and HttpMetadataServer: the wire contract they share with Mooncake's
// HTTP metadata server, server options and lifetime.
#include <gtest/gtest.h>
#include <httplib.h>

#include "../http/raw_http.h"
#include "metadata/http_metadata_server.h"
#include "metadata/http_store.h"
#include "metadata/internal/http_call.h"
#include "metadata_test_util.h"

namespace ferry::metadata {
namespace {

Deadline Soon() { return Deadline::In(std::chrono::seconds(10)); }

std::unique_ptr<HttpMetadataServer> StartServer(HttpMetadataServer::Options options = {}) {
  auto server = HttpMetadataServer::Create(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

TEST(HttpMetadataServerTest, ServesTheMooncakeContractOnTheWire) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);
  EXPECT_EQ(server->url(), "http://127.0.0.1:" + std::to_string(server->port()) + "/metadata");
  httplib::Client raw("127.0.0.1", server->port());

  auto get = raw.Get("/metadata?key=ferry%2Fsegments%2Fa%3A1");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 404);
  EXPECT_EQ(get->body, "metadata not found");

  auto put = raw.Put("/metadata?key=ferry%2Fsegments%2Fa%3A1", "{\"x\":1}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200);

  get = raw.Get("/metadata?key=ferry%2Fsegments%2Fa%3A1");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "{\"x\":1}");

  auto del = raw.Delete("/metadata?key=ferry%2Fsegments%2Fa%3A1");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  del = raw.Delete("/metadata?key=never");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);

  auto no_key = raw.Get("/metadata");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 400);
  auto other_path = raw.Get("/other?key=a");
  ASSERT_TRUE(other_path);
  EXPECT_EQ(other_path->status, 404);
}

TEST(HttpMetadataServerTest, StoreAndRawClientSeeTheSameKeys) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto store = HttpMetadataStore::Create(server->url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Put("ferry/segments/10.0.0.2:17000", "desc", Soon()).ok());
  EXPECT_EQ(server->size(), 1u);

  // What curl_easy_escape (Mooncake's client) would send for the same key.
  httplib::Client raw("127.0.0.1", server->port());
  auto get = raw.Get("/metadata?key=ferry%2Fsegments%2F10.0.0.2%3A17000");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "desc");
}

TEST(HttpMetadataServerTest, CustomPathIsServedAndOthersAreNot) {
  HttpMetadataServer::Options options;
  options.path = "/v1/kv.meta";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto store = MetadataStore::Create(server->url());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("k", "v", Soon()).ok());
  EXPECT_EQ(*(*store)->Get("k", Soon()), "v");

  // '.' is literal, not a regex wildcard.
  httplib::Client raw("127.0.0.1", server->port());
  auto res = raw.Get("/v1/kvXmeta?key=k");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(HttpMetadataServerTest, RejectsBadPaths) {
  for (std::string path : {"", "metadata", "/meta data", "/a(b)", "/a?key=1"}) {
    HttpMetadataServer::Options options;
    options.path = path;
    EXPECT_EQ(HttpMetadataServer::Create(options).status().code(), StatusCode::kInvalidArgument)
        << path;
  }
}

TEST(HttpMetadataServerTest, PortInUseIsUnavailable) {
  auto first = StartServer();
  ASSERT_NE(first, nullptr);
  HttpMetadataServer::Options options;
  options.port = first->port();
  auto second = HttpMetadataServer::Create(options);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(HttpMetadataServerTest, StopIsIdempotentAndClientsThenFail) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto store = MetadataStore::Create(server->url());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("k", "v", Soon()).ok());
  server->Stop();
  server->Stop();
  EXPECT_EQ((*store)->Get("k", Soon()).status().code(), StatusCode::kUnavailable);
}

// Regression: the metadata server had no body limit.
TEST(HttpMetadataServerTest, HugeBodyIsRefusedWith413) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  size_t rss_growth = 0;
  int64_t answer_ms = 0;
  EXPECT_EQ(
      http::testing::HugeBodyStatus(server->port(), "PUT /metadata?key=k", &rss_growth, &answer_ms),
      413);
  EXPECT_LT(answer_ms, 500);
  EXPECT_LT(rss_growth, size_t{8} << 20);
  EXPECT_EQ(server->size(), 0u);
}

// Regression: a malformed Content-Length closed the connection without an answer.
TEST(HttpMetadataServerTest, MalformedContentLengthGets400) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(http::testing::MalformedContentLength(server->port(), "PUT /metadata?key=k").status,
            400);
  EXPECT_EQ(server->size(), 0u);
}

// Slow clients hold connection slots, not the server's four workers.
TEST(HttpMetadataServerTest, SlowHeaderClientsDoNotStopTheMetadataServer) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  http::testing::SlowHeaderClients slow(server->port(), 64);
  ASSERT_EQ(slow.connected(), 64);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto store = MetadataStore::Create(server->url());
  ASSERT_TRUE(store.ok());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE((*store)->Put("k", "v", Soon()).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(HttpMetadataStoreTest, ServerErrorsMapToStatusCodes) {
  testing::ScriptedHttpServer fake;
  fake.server().Get("/metadata", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content("overloaded", "text/plain");
  });
  fake.server().Put("/metadata", [](const httplib::Request&, httplib::Response& res) {
    res.status = 403;
    res.set_content("forbidden", "text/plain");
  });
  ASSERT_TRUE(fake.Start());
  auto store =
      HttpMetadataStore::Create("http://127.0.0.1:" + std::to_string(fake.port()) + "/metadata");
  ASSERT_TRUE(store.ok());
  auto got = (*store)->Get("k", Soon());
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("503"), std::string::npos) << got.status().ToString();
  Status put = (*store)->Put("k", "v", Soon());
  EXPECT_EQ(put.code(), StatusCode::kInternal);
  EXPECT_NE(put.message().find("403"), std::string::npos) << put.ToString();
}

TEST(HttpMetadataStoreTest, PercentEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(internal::PercentEncode("ferry/segments/a:1"), "ferry%2Fsegments%2Fa%3A1");
  EXPECT_EQ(internal::PercentEncode("a b+c&d=e%"), "a%20b%2Bc%26d%3De%25");
  EXPECT_EQ(internal::PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(internal::PercentEncode("\xC3\xA9"), "%C3%A9");
}

}  // namespace
}  // namespace ferry::metadata

namespace ferry::metadata {
namespace {

TEST(HttpMetadataServerTest, SecretGuardsEveryRequest) {
  // Open, anyone could rewrite a peer's segment descriptor.
  HttpMetadataServer::Options options;
  options.secret = "k";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  httplib::Client raw("127.0.0.1", server->port());
  auto put = raw.Put("/metadata?key=a", "evil", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 401);
  EXPECT_EQ(raw.Get("/metadata?key=a")->status, 401);
  EXPECT_EQ(server->size(), 0u);
  auto store = HttpMetadataStore::Create(server->url(), "k");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("a", "good", Soon()).ok());
  auto got = (*store)->Get("a", Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "good");
  auto wrong = HttpMetadataStore::Create(server->url(), "not-k");
  ASSERT_TRUE(wrong.ok());
  Status refused = (*wrong)->Put("a", "evil", Soon());
  EXPECT_EQ(refused.code(), StatusCode::kPermissionDenied) << refused.ToString();
  EXPECT_EQ(*(*store)->Get("a", Soon()), "good");
}

TEST(HttpMetadataServerTest, KeysAndBytesAreCapped) {
  HttpMetadataServer::Options options;
  options.max_keys = 3;
  options.max_total_bytes = 1000;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto store = HttpMetadataStore::Create(server->url());
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*store)->Put("k" + std::to_string(i), "v", Soon()).ok());
  EXPECT_FALSE((*store)->Put("k3", "v", Soon()).ok());
  EXPECT_TRUE((*store)->Put("k0", "replaced", Soon()).ok());  // replacing is fine
  EXPECT_FALSE((*store)->Put("k1", std::string(2000, 'x'), Soon()).ok());
  ASSERT_TRUE((*store)->Delete("k2", Soon()).ok());
  EXPECT_TRUE((*store)->Put("k3", "v", Soon()).ok());
  EXPECT_EQ(server->size(), 3u);
}

}  // namespace
}  // namespace ferry::metadata
