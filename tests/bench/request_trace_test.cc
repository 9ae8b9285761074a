#include "bench/trace/request_trace.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace ferry::bench {
namespace {

TEST(RequestTraceTest, ParsesMooncakeLine) {
  auto r = ParseTraceLine(
      R"({"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]})", 3,
      TraceLimits{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->timestamp_ms, 27482);
  EXPECT_EQ(r->input_length, 6955);
  EXPECT_EQ(r->output_length, 52);
  EXPECT_EQ(r->hash_ids, (std::vector<int64_t>{46, 47}));
  EXPECT_EQ(r->line, 3);
}

TEST(RequestTraceTest, AcceptsFractionalTimestampAndExtraFields) {
  auto r = ParseTraceLine(
      R"({"timestamp": 1.5, "input_length": 1, "output_length": 0, "hash_ids": [], "x": {"y": 1}})",
      1, TraceLimits{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(r->timestamp_ms, 1.5);
  EXPECT_TRUE(r->hash_ids.empty());
}

// Each malformed line is an InvalidArgument naming the line and what is wrong.
TEST(RequestTraceTest, MalformedLinesNameLineAndField) {
  const struct {
    const char* line;
    const char* want;
  } cases[] = {
      {"not json", "line 9: "},
      {"[1, 2]", "not a JSON object"},
      {R"({"input_length": 1, "output_length": 1, "hash_ids": []})", "missing \"timestamp\""},
      {R"({"timestamp": -1, "input_length": 1, "output_length": 1, "hash_ids": []})",
       "\"timestamp\" must be"},
      {R"({"timestamp": "0", "input_length": 1, "output_length": 1, "hash_ids": []})",
       "\"timestamp\" must be"},
      {R"({"timestamp": 0, "output_length": 1, "hash_ids": []})", "missing \"input_length\""},
      {R"({"timestamp": 0, "input_length": 1.5, "output_length": 1, "hash_ids": []})",
       "\"input_length\" must be an integer"},
      {R"({"timestamp": 0, "input_length": -3, "output_length": 1, "hash_ids": []})",
       "\"input_length\" must be an integer"},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 99999999999, "hash_ids": []})",
       "\"output_length\" must be an integer in [0, 16777216]"},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 1})", "missing \"hash_ids\""},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": 4})",
       "\"hash_ids\" must be an array"},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1, -2]})",
       "\"hash_ids\"[1] must be an integer >= 0"},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1, "a"]})",
       "\"hash_ids\"[1] must be"},
      {R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [[[[[1]]]]]})",
       "nested deeper"},
  };
  for (const auto& c : cases) {
    auto r = ParseTraceLine(c.line, 9, TraceLimits{});
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.line;
    EXPECT_NE(r.status().message().find("trace line 9"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.line << " -> " << r.status().message();
  }
}

TEST(RequestTraceTest, EnforcesHashIdAndLineLimits) {
  TraceLimits limits;
  limits.max_hash_ids = 2;
  auto r = ParseTraceLine(
      R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1, 2, 3]})", 1,
      limits);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than 2 hash ids"), std::string::npos);

  limits = TraceLimits{};
  limits.max_line_bytes = 64;
  std::istringstream in(R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": []})"
                        "\n" +
                        std::string(1000, ' ') + "\n");
  auto trace = ReadTrace(in, limits);
  ASSERT_FALSE(trace.ok());
  EXPECT_NE(trace.status().message().find("trace line 1: longer than 64 bytes"), std::string::npos)
      << trace.status().message();
}

TEST(RequestTraceTest, ReadTraceSkipsBlankLinesSortsAndNamesBadLine) {
  std::istringstream good(
      "{\"timestamp\": 20, \"input_length\": 2, \"output_length\": 1, \"hash_ids\": [2]}\n"
      "\n"
      "{\"timestamp\": 10, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\r\n"
      "{\"timestamp\": 20, \"input_length\": 3, \"output_length\": 1, \"hash_ids\": [3]}");
  auto trace = ReadTrace(good, TraceLimits{});
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  ASSERT_EQ(trace->size(), 3u);
  EXPECT_EQ((*trace)[0].input_length, 1);
  EXPECT_EQ((*trace)[0].line, 3);
  EXPECT_EQ((*trace)[1].input_length, 2);  // equal timestamps keep file order
  EXPECT_EQ((*trace)[2].input_length, 3);

  std::istringstream bad(
      "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}\n"
      "\n"
      "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [\n");
  auto r = ReadTrace(bad, TraceLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("trace line 3:"), std::string::npos) << r.status().message();

  std::istringstream empty("\n\n");
  EXPECT_FALSE(ReadTrace(empty, TraceLimits{}).ok());
}

TEST(RequestTraceTest, MaxRequestsStopsReading) {
  std::string text;
  for (int i = 0; i < 5; ++i) {
    text += "{\"timestamp\": " + std::to_string(i) +
            ", \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}\n";
  }
  text += "garbage after the limit is never read\n";
  std::istringstream in(text);
  TraceLimits limits;
  limits.max_requests = 3;
  auto trace = ReadTrace(in, limits);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  EXPECT_EQ(trace->size(), 3u);
}

TEST(RequestTraceTest, TraceLineRoundTrips) {
  TraceRequest r{.timestamp_ms = 1500, .input_length = 700, .output_length = 9, .hash_ids = {4, 5}};
  const std::string line = TraceLine(r);
  EXPECT_EQ(line, R"({"timestamp":1500,"input_length":700,"output_length":9,"hash_ids":[4,5]})");
  auto back = ParseTraceLine(line, 1, TraceLimits{});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->hash_ids, r.hash_ids);
  EXPECT_EQ(back->input_length, 700);
}

}  // namespace
}  // namespace ferry::bench
