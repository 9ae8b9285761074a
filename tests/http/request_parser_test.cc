// RequestParser alone: well-formed requests in every framing, split at every byte, and
// each malformed or oversized case with the status it must get.
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::http {
namespace {

struct Parsed {
  ParseStep step = ParseStep::kNeedMore;
  int status = 0;
  Request request;
  std::string rest;  // bytes left after the request
};

// Feeds `bytes` in pieces of `piece` bytes (0: all at once), stepping past kHeadersDone.
Parsed ParseInPieces(const std::string& bytes, size_t piece, HttpLimits limits = {}) {
  RequestParser parser(limits);
  Parsed out;
  std::string in;
  size_t fed = 0;
  while (true) {
    const size_t n = piece == 0 ? bytes.size() - fed : std::min(piece, bytes.size() - fed);
    in.append(bytes, fed, n);
    fed += n;
    do {
      out.step = parser.Parse(&in);
    } while (out.step == ParseStep::kHeadersDone);
    if (out.step != ParseStep::kNeedMore || fed == bytes.size()) break;
  }
  out.status = parser.error_status();
  if (out.step == ParseStep::kComplete) out.request = parser.TakeRequest();
  out.rest = in;
  return out;
}

Parsed Parse(const std::string& bytes, HttpLimits limits = {}) {
  return ParseInPieces(bytes, 0, limits);
}

TEST(RequestParserTest, ParsesAGetWithQueryAndHeaders) {
  Parsed p =
      Parse("GET /v1/a%20b?key=x%2Fy&plus=a+b&empty= HTTP/1.1\r\nHost: h\r\nX-Id:  42 \r\n\r\n");
  ASSERT_EQ(p.step, ParseStep::kComplete);
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.target, "/v1/a%20b?key=x%2Fy&plus=a+b&empty=");
  EXPECT_EQ(p.request.path, "/v1/a b");
  EXPECT_EQ(p.request.Header("x-id"), "42");
  EXPECT_TRUE(p.request.HasHeader("HOST"));
  EXPECT_EQ(p.request.Param("key"), "x/y");
  EXPECT_EQ(p.request.Param("plus"), "a b");
  EXPECT_EQ(p.request.Param("empty"), "");
  EXPECT_EQ(p.request.Param("absent"), std::nullopt);
  EXPECT_FALSE(p.request.ClientGone());  // not made by a server
}

TEST(RequestParserTest, EveryFramingParsesTheSameWhenSplitAtAnyByte) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", "hello world"},
      {"POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
       "hello world"},
      {"\r\nGET /e HTTP/1.0\r\n\r\n", ""},
  };
  for (const auto& [bytes, body] : cases) {
    for (size_t piece : {0, 1, 2, 3, 7}) {
      Parsed p = ParseInPieces(bytes, piece);
      ASSERT_EQ(p.step, ParseStep::kComplete) << bytes << " piece " << piece;
      EXPECT_EQ(p.request.body, body) << bytes;
      EXPECT_EQ(p.request.path, "/e");
      EXPECT_TRUE(p.rest.empty());
    }
  }
}

TEST(RequestParserTest, PipelinedBytesStayForTheNextRequest) {
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  Parsed p = Parse("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok" + second);
  ASSERT_EQ(p.step, ParseStep::kComplete);
  EXPECT_EQ(p.request.body, "ok");
  EXPECT_EQ(p.rest, second);
  Parsed q = Parse(p.rest);
  ASSERT_EQ(q.step, ParseStep::kComplete);
  EXPECT_EQ(q.request.path, "/b");
}

TEST(RequestParserTest, KeepAliveFollowsVersionAndConnection) {
  auto wants = [](const std::string& bytes) {
    RequestParser parser({});
    std::string in = bytes;
    EXPECT_EQ(parser.Parse(&in), ParseStep::kHeadersDone) << bytes;
    return parser.ClientWantsKeepAlive();
  };
  EXPECT_TRUE(wants("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  EXPECT_FALSE(wants("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(wants("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(wants("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

TEST(RequestParserTest, ExpectContinueIsReportedAfterTheHeaders) {
  RequestParser parser({});
  std::string in =
      "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(parser.Parse(&in), ParseStep::kHeadersDone);
  EXPECT_TRUE(parser.ExpectsContinue());
  EXPECT_TRUE(parser.HasBody());
  EXPECT_EQ(parser.Parse(&in), ParseStep::kNeedMore);
  in = "abc";
  EXPECT_EQ(parser.Parse(&in), ParseStep::kComplete);
  EXPECT_EQ(parser.TakeRequest().body, "abc");
}

struct BadCase {
  const char* what;
  std::string bytes;
  int status;
};

std::vector<BadCase> BadCases() {
  const std::string get = "GET / HTTP/1.1\r\nHost: h\r\n";
  const std::string post = "POST / HTTP/1.1\r\nHost: h\r\n";
  return {
      {"letters in Content-Length", post + "Content-Length: abc\r\n\r\n", 400},
      {"negative Content-Length", post + "Content-Length: -1\r\n\r\n", 400},
      {"signed Content-Length", post + "Content-Length: +5\r\n\r\n", 400},
      {"hex Content-Length", post + "Content-Length: 0x10\r\n\r\n", 400},
      {"list Content-Length", post + "Content-Length: 5, 5\r\n\r\n", 400},
      {"overflowing Content-Length", post + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
      {"two differing Content-Length", post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       400},
      {"Content-Length with Transfer-Encoding",
       post + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"gzip Transfer-Encoding", post + "Transfer-Encoding: gzip\r\n\r\n", 501},
      {"gzip, chunked Transfer-Encoding", post + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"bad chunk size", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"chunk size with spaces", post + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n", 400},
      {"chunk without CRLF", post + "Transfer-Encoding: chunked\r\n\r\n2\r\nabXY", 400},
      {"header without colon", get + "NoColonHere\r\n\r\n", 400},
      {"header folding", get + "X-A: 1\r\n  continued\r\n\r\n", 400},
      {"space before colon", get + "X-A : 1\r\n\r\n", 400},
      {"control character in value", get + "X-A: a\x01z\r\n\r\n", 400},
      {"bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"request line without version", "GET /\r\nHost: h\r\n\r\n", 400},
      {"double space in request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"extra request line field", "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", 400},
      {"not HTTP", "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400},
      {"relative target", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"bad percent-encoding", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", get + "Host: i\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
      {"unknown Expect", post + "Expect: magic\r\nContent-Length: 1\r\n\r\n", 417},
      {"target over max_uri_bytes", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"target over max_uri_bytes, unfinished", "GET /" + std::string(9000, 'a'), 414},
      {"headers over max_header_bytes", get + "X-A: " + std::string(70000, 'a') + "\r\n\r\n", 431},
      {"headers over max_header_bytes, unfinished", get + "X-A: " + std::string(70000, 'a'), 431},
      {"too many headers",
       [&] {
         std::string s = get;
         for (int i = 0; i < 101; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
         return s + "\r\n";
       }(),
       431},
      {"Content-Length over max_body_bytes", post + "Content-Length: 1073741824\r\n\r\n", 413},
      {"chunked body over max_body_bytes",
       post + "Transfer-Encoding: chunked\r\n\r\n100001\r\n" + std::string(4096, 'a'), 413},
  };
}

TEST(RequestParserTest, MalformedAndOversizedRequestsGetTheirStatus) {
  for (const BadCase& c : BadCases()) {
    Parsed p = Parse(c.bytes);
    EXPECT_EQ(p.step, ParseStep::kError) << c.what;
    EXPECT_EQ(p.status, c.status) << c.what;
  }
}

TEST(RequestParserTest, HugeContentLengthIsRefusedWithoutAllocatingIt) {
  RequestParser parser({});
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1073741824\r\n\r\n";
  EXPECT_EQ(parser.Parse(&in), ParseStep::kError);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_LT(parser.request().body.capacity(), size_t{1} << 20);
}

TEST(RequestParserTest, AbsoluteFormTargetKeepsThePath) {
  Parsed p = Parse("GET http://example.com:80/v1/models?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p.step, ParseStep::kComplete);
  EXPECT_EQ(p.request.path, "/v1/models");
  EXPECT_EQ(p.request.query_string, "x=1");
}

}  // namespace
}  // namespace ferry::http
