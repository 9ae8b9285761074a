// HttpServer over real loopback sockets: routing, framing, keep-alive, pipelining,
// streaming, Expect: 100-continue, error statuses, exceptions, ClientGone and Stop().
#include "http/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "raw_http.h"

namespace ferry::http {
namespace {

using namespace std::chrono_literals;
using testing::RawConnection;
using testing::RawResponse;

std::unique_ptr<HttpServer> StartServer(HttpServerOptions options,
                                        const std::function<void(HttpServer&)>& routes) {
  auto server = HttpServer::Create(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  if (!server.ok()) return nullptr;
  routes(**server);
  Status started = (*server)->Start("127.0.0.1", 0);
  EXPECT_TRUE(started.ok()) << started.ToString();
  return started.ok() ? std::move(server).value() : nullptr;
}

void EchoRoutes(HttpServer& s) {
  s.Route("GET", "/hello", [](const Request& req, Response& res) {
    res.Set(200, "hello " + req.Param("name").value_or("nobody"), "text/plain");
    res.SetHeader("X-Echo", req.Header("x-test"));
  });
  s.Route("POST", "/echo", [](const Request& req, Response& res) {
    res.Set(200, req.body, "application/octet-stream");
  });
  s.Route("PUT", "/echo",
          [](const Request& req, Response& res) { res.Set(201, "", "text/plain"); });
}

const char kGetHello[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

TEST(HttpServerTest, ServesGetAndPostToAnHttplibClient) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  client.set_keep_alive(true);
  auto get = client.Get("/hello?name=a%20b", {{"X-Test", "t1"}});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello a b");
  EXPECT_EQ(get->get_header_value("X-Echo"), "t1");
  EXPECT_EQ(get->get_header_value("Content-Type"), "text/plain");
  const std::string big(300000, 'x');  // over 1 KiB: httplib and curl send it at once
  auto post = client.Post("/echo", big, "application/octet-stream");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, big);
  EXPECT_EQ(server->stats().accepted, 1u);  // one keep-alive connection
  EXPECT_EQ(server->stats().requests, 2u);
}

TEST(HttpServerTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  RawConnection c(server->port());
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(c.Send(kGetHello));
  EXPECT_EQ(c.Read().body, "hello nobody");
  // Three requests in one write: the second and third wait in the connection's buffer
  // while the first is handled.
  ASSERT_TRUE(
      c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none"
             "GET /hello?name=two HTTP/1.1\r\nHost: t\r\n\r\n"
             "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
             "chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n"));
  EXPECT_EQ(c.Read().body, "one");
  EXPECT_EQ(c.Read().body, "hello two");
  EXPECT_EQ(c.Read().body, "three");
  EXPECT_EQ(server->stats().accepted, 1u);
}

TEST(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  RawResponse r = testing::Exchange(
      server->port(),
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5;name=v\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Wikipedia in\r\n\r\nchunks.");
}

TEST(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  RawConnection c(server->port());
  ASSERT_TRUE(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  char interim[64] = {};
  pollfd p{c.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  const ssize_t n = ::recv(c.fd(), interim, sizeof(interim) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_STREQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.Send("body"));
  RawResponse r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "body");

  // Too large: 413 instead of 100 Continue, and the body is never asked for.
  RawConnection big(server->port());
  ASSERT_TRUE(big.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n"));
  RawResponse refused = big.Read();
  EXPECT_EQ(refused.status, 413);
  EXPECT_TRUE(refused.HasHeader("Connection: close"));
}

TEST(HttpServerTest, StreamedResponsesAreChunkedAndRawForHttp10) {
  auto server = StartServer({}, [](HttpServer& s) {
    s.Route("GET", "/stream", [](const Request&, Response& res) {
      res.SetHeader("Cache-Control", "no-cache");
      res.Stream("text/event-stream", [](ChunkWriter& out) {
        for (const char* piece : {"data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"}) {
          if (!out.Write(piece)) return;
        }
      });
    });
  });
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  auto res = client.Get("/stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "data: a\n\ndata: b\n\ndata: [DONE]\n\n");
  EXPECT_EQ(res->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");

  RawConnection old(server->port());
  ASSERT_TRUE(old.Send("GET /stream HTTP/1.0\r\n\r\n"));
  RawResponse raw = old.Read();
  EXPECT_EQ(raw.status, 200);
  EXPECT_FALSE(raw.HasHeader("chunked"));
  EXPECT_EQ(raw.body, "data: a\n\ndata: b\n\ndata: [DONE]\n\n");
}

TEST(HttpServerTest, UnknownPathIs404AndOtherMethodIs405WithAllow) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  RawResponse missing = testing::Exchange(server->port(), "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("/nope"), std::string::npos);
  RawResponse wrong = testing::Exchange(server->port(), "DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_TRUE(wrong.HasHeader("Allow: POST, PUT\r\n")) << wrong.head;
  // The query string is not part of the route.
  EXPECT_EQ(testing::Exchange(server->port(), "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n").status,
            200);
}

TEST(HttpServerTest, MalformedRequestsGetAStatusAndAClose) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  const std::string post = "POST /echo HTTP/1.1\r\nHost: t\r\n";
  const std::vector<std::pair<std::string, int>> cases = {
      {post + "Content-Length: 12abc\r\n\r\n", 400},
      {post + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nab", 400},
      {post + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {post + "Transfer-Encoding: chunked\r\n\r\nxyz\r\n", 400},
      {post + "Transfer-Encoding: compress\r\n\r\n", 501},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nBad header\r\n\r\n", 400},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nX: 1\r\n folded\r\n\r\n", 400},
      {"GET /hello\r\n\r\n", 400},
      {"GET /hello HTTP/3.0\r\nHost: t\r\n\r\n", 505},
      {"GET /" + std::string(10000, 'u') + " HTTP/1.1\r\nHost: t\r\n\r\n", 414},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nX: " + std::string(70000, 'h') + "\r\n\r\n", 431},
      {post + "Content-Length: 1048577\r\n\r\n", 413},
  };
  for (const auto& [bytes, status] : cases) {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send(bytes));
    RawResponse r = c.Read();
    EXPECT_EQ(r.status, status) << bytes.substr(0, 80);
    EXPECT_TRUE(r.HasHeader("Connection: close")) << r.head;
    EXPECT_TRUE(c.WaitClosed(2s));
  }
  EXPECT_EQ(server->stats().bad_requests, 9u);
  EXPECT_EQ(server->stats().too_large, 3u);
  EXPECT_EQ(testing::Exchange(server->port(), kGetHello).status, 200);
}

TEST(HttpServerTest, HugeContentLengthIsAnswered413AtOnceWithoutReadingTheBody) {
  auto server = StartServer({}, EchoRoutes);
  ASSERT_NE(server, nullptr);
  const size_t rss_before = testing::RssBytes();
  RawConnection c(server->port());
  const auto start = SteadyClock::now();
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n"));
  RawResponse r = c.Read(2s);
  EXPECT_EQ(r.status, 413);
  EXPECT_LT(SteadyClock::now() - start, 500ms);
  // A client that sends the body anyway is cut off after a bounded amount.
  const std::string junk(1 << 20, 'j');
  size_t sent = 0;
  while (sent < (size_t{256} << 20) && c.Send(junk)) sent += junk.size();
  EXPECT_LT(sent, size_t{256} << 20);
  EXPECT_LT(testing::RssBytes(), rss_before + (size_t{8} << 20));
}

TEST(HttpServerTest, HandlerExceptionGets500AndTheServerKeepsServing) {
  auto server = StartServer({}, [](HttpServer& s) {
    EchoRoutes(s);
    s.Route("GET", "/throw",
            [](const Request&, Response&) -> void { throw std::runtime_error("handler bug"); });
  });
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  for (int i = 0; i < 3; ++i) {
    auto res = client.Get("/throw");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 500);
  }
  EXPECT_EQ(server->stats().handler_exceptions, 3u);
  EXPECT_EQ(client.Get("/hello")->status, 200);
}

TEST(HttpServerTest, ErrorBodyOptionShapesTheServersOwnErrors) {
  HttpServerOptions options;
  options.error_body = [](int status, std::string_view message) {
    return ErrorBody{"{\"code\":" + std::to_string(status) + "}", "application/json"};
  };
  auto server = StartServer(options, EchoRoutes);
  ASSERT_NE(server, nullptr);
  RawResponse r = testing::Exchange(server->port(), "GET /none HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "{\"code\":404}");
  EXPECT_TRUE(r.HasHeader("Content-Type: application/json"));
}

TEST(HttpServerTest, ConnectionCloseAndHttp10AreHonoured) {
  HttpServerOptions options;
  options.limits.max_requests_per_connection = 2;
  auto server = StartServer(options, EchoRoutes);
  ASSERT_NE(server, nullptr);
  {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    EXPECT_TRUE(c.Read().HasHeader("Connection: close"));
    EXPECT_TRUE(c.WaitClosed(2s));
  }
  {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send("GET /hello HTTP/1.0\r\n\r\n"));
    EXPECT_EQ(c.Read().status, 200);
    EXPECT_TRUE(c.WaitClosed(2s));
  }
  {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_TRUE(c.Read().HasHeader("Connection: keep-alive"));
    ASSERT_TRUE(c.Send(kGetHello));  // the second of max_requests_per_connection
    EXPECT_TRUE(c.Read().HasHeader("Connection: close"));
    EXPECT_TRUE(c.WaitClosed(2s));
  }
}

TEST(HttpServerTest, ClientGoneIsSeenByAWaitingHandler) {
  std::atomic<int> seen_after_ms{-1};
  auto server = StartServer({}, [&](HttpServer& s) {
    s.Route("GET", "/wait", [&](const Request& req, Response& res) {
      const auto start = SteadyClock::now();
      while (!req.ClientGone() && SteadyClock::now() - start < 5s) {
        std::this_thread::sleep_for(10ms);
      }
      seen_after_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start)
              .count());
      res.Set(200, "late", "text/plain");
    });
  });
  ASSERT_NE(server, nullptr);
  {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::this_thread::sleep_for(200ms);
  }  // closes
  const Deadline d = Deadline::In(5s);
  while (seen_after_ms.load() < 0 && !d.Expired()) std::this_thread::sleep_for(10ms);
  EXPECT_GE(seen_after_ms.load(), 150);
  EXPECT_LT(seen_after_ms.load(), 1000);
}

TEST(HttpServerTest, StopReturnsWithinASecondWithAStreamAndIdleConnections) {
  std::atomic<bool> streaming{false};
  auto server = StartServer({}, [&](HttpServer& s) {
    EchoRoutes(s);
    s.Route("GET", "/forever", [&](const Request&, Response& res) {
      res.Stream("text/plain", [&](ChunkWriter& out) {
        streaming = true;
        while (out.Write("tick\n")) std::this_thread::sleep_for(20ms);
      });
    });
  });
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server->port()));
    if (i % 2 == 0) {  // half of them after one request (keep-alive idle)
      ASSERT_TRUE(idle.back()->Send(kGetHello));
      ASSERT_EQ(idle.back()->Read().status, 200);
    }
  }
  RawConnection stream(server->port());
  ASSERT_TRUE(stream.Send("GET /forever HTTP/1.1\r\nHost: t\r\n\r\n"));
  const Deadline d = Deadline::In(5s);
  while (!streaming && !d.Expired()) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(streaming);
  const auto start = SteadyClock::now();
  server->Stop();
  EXPECT_LT(SteadyClock::now() - start, 1s);
  EXPECT_TRUE(stream.WaitClosed(2s));
  for (auto& c : idle) EXPECT_TRUE(c->WaitClosed(2s));
  server->Stop();  // idempotent
}

TEST(HttpServerTest, PortInUseIsAlreadyExistsAndStartTwiceFails) {
  auto first = StartServer({}, EchoRoutes);
  ASSERT_NE(first, nullptr);
  auto second = HttpServer::Create({});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->Start("127.0.0.1", first->port()).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(first->Start("127.0.0.1", 0).code(), StatusCode::kFailedPrecondition);
  auto third = HttpServer::Create({});
  EXPECT_EQ((*third)->Start("no such host.invalid", 0).code(), StatusCode::kInvalidArgument);
}

TEST(HttpServerTest, CreateRejectsNonPositiveLimits) {
  HttpServerOptions options;
  options.worker_threads = 0;
  EXPECT_EQ(HttpServer::Create(options).status().code(), StatusCode::kInvalidArgument);
  options = {};
  options.limits.header_timeout = 0ms;
  EXPECT_EQ(HttpServer::Create(options).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::http
