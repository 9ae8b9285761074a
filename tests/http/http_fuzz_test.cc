// A crude fuzz test: thousands of random and mutated requests over real sockets. Every
// one must end (a response or a close) within the deadlines, and the server must still
// answer a valid request afterwards. The parser alone gets many more, in memory.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "http/http_server.h"
#include "http/request_parser.h"
#include "raw_http.h"

namespace ferry::http {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string>& Seeds() {
  static const std::vector<std::string> seeds = {
      "GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
      "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n",
  };
  return seeds;
}

std::string Mutate(std::mt19937& rng, std::string s) {
  const char kAlphabet[] = "\r\n :;0123456789abcdefABCDEF%/?&=-\t\x00\x7f\xff";
  std::uniform_int_distribution<int> op(0, 5);
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t at = rng() % s.size();
    switch (op(rng)) {
      case 0:
        s[at] = static_cast<char>(rng());
        break;
      case 1:
        s[at] = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
        break;
      case 2:
        s.insert(at, 1, kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
        break;
      case 3:
        s.erase(at, 1 + rng() % 8);
        break;
      case 4:
        s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 16));
        break;
      case 5:
        s.insert(at, std::to_string(rng()));
        break;
    }
  }
  return s;
}

std::string RandomBytes(std::mt19937& rng) {
  std::string s(rng() % 300, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(HttpFuzzTest, ParserSurvivesMutatedRequestsInMemory) {
  std::mt19937 rng(1234);
  HttpLimits limits;
  limits.max_body_bytes = 4096;
  for (int i = 0; i < 200000; ++i) {
    std::string in = i % 10 == 0 ? RandomBytes(rng) : Mutate(rng, Seeds()[rng() % Seeds().size()]);
    RequestParser parser(limits);
    for (int steps = 0; steps < 8; ++steps) {
      ParseStep step = parser.Parse(&in);
      if (step == ParseStep::kComplete) {
        parser.TakeRequest();
        continue;
      }
      if (step != ParseStep::kHeadersDone) {
        if (step == ParseStep::kError) {
          EXPECT_GE(parser.error_status(), 400);
          EXPECT_LT(parser.error_status(), 600);
        }
        break;
      }
    }
  }
}

TEST(HttpFuzzTest, ServerSurvivesThousandsOfMutatedRequests) {
  HttpServerOptions options;
  options.worker_threads = 4;
  options.limits.header_timeout = 300ms;
  options.limits.body_timeout = 300ms;
  auto server = HttpServer::Create(options);
  ASSERT_TRUE(server.ok());
  (*server)->Route("GET", "/echo", [](const Request& req, Response& res) {
    res.Set(200, req.query_string, "text/plain");
  });
  (*server)->Route("POST", "/echo",
                   [](const Request& req, Response& res) { res.Set(200, req.body, "text/plain"); });
  ASSERT_TRUE((*server)->Start("127.0.0.1", 0).ok());
  const uint16_t port = (*server)->port();
  std::mt19937 rng(42);
  int answered = 0;
  // In batches of 100 concurrent connections: a request cut short waits for the header
  // or body deadline, so one at a time would take minutes.
  for (int batch = 0; batch < 30; ++batch) {
    std::vector<std::unique_ptr<testing::RawConnection>> conns;
    for (int i = 0; i < 100; ++i) {
      const std::string bytes =
          i % 8 == 0 ? RandomBytes(rng) : Mutate(rng, Seeds()[rng() % Seeds().size()]);
      conns.push_back(std::make_unique<testing::RawConnection>(port));
      ASSERT_TRUE(conns.back()->valid()) << "connect failed in batch " << batch;
      conns.back()->Send(bytes);
      if (i % 2 == 0) ::shutdown(conns.back()->fd(), SHUT_WR);  // half the time: "no more"
    }
    for (size_t i = 0; i < conns.size(); ++i) {
      answered += conns[i]->Read(2s).status != 0 ? 1 : 0;
      // A closed request stream, or one that stops mid-request, must end in a close.
      if (i % 2 == 0) {
        EXPECT_TRUE(conns[i]->WaitClosed(2s)) << "batch " << batch << " #" << i;
      }
    }
  }
  EXPECT_GT(answered, 1000);
  testing::RawResponse ok =
      testing::Exchange(port, "GET /echo?alive=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "alive=1");
}

}  // namespace
}  // namespace ferry::http
