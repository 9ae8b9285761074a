#include "server/openai_request.h"

#include <gtest/gtest.h>

#include "server/openai_response.h"

namespace ferry::server {
namespace {

OpenAiRequest ParseOk(const std::string& body, ApiKind kind = ApiKind::kCompletion) {
  auto r = ParseOpenAiRequest(body, kind);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : OpenAiRequest{};
}

Status ParseErr(const std::string& body, ApiKind kind = ApiKind::kCompletion) {
  auto r = ParseOpenAiRequest(body, kind);
  EXPECT_FALSE(r.ok()) << body;
  return r.status();
}

TEST(OpenAiRequestTest, CompletionWithAllFields) {
  OpenAiRequest r = ParseOk(R"({"model":"tiny","prompt":"Hello","max_tokens":7,
      "temperature":0.5,"top_p":0.9,"top_k":40,"seed":3,"stop":["a","bc"],"stream":true,
      "stream_options":{"include_usage":true},"kv_transfer_params":{"do_remote_decode":true}})");
  EXPECT_EQ(r.model, "tiny");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Hello");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_EQ(r.params.seed, 3u);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.kv_transfer_params["do_remote_decode"], true);
}

TEST(OpenAiRequestTest, PromptAsTokenIdsOrSingleString) {
  EXPECT_EQ(ParseOk(R"({"prompt":[1,2,3]})").prompts.at(0).tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ParseOk(R"({"prompt":["hi"]})").prompts.at(0).text, "hi");
  EXPECT_EQ(ParseOk(R"({"prompt":"x","stop":"END"})").params.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(ParseOk(R"({"prompt":"x"})").kv_transfer_params.is_null());
  EXPECT_FALSE(ParseOk(R"({"prompt":"x"})").max_tokens.has_value());
}

TEST(OpenAiRequestTest, ChatMessagesAndMaxCompletionTokens) {
  OpenAiRequest r = ParseOk(R"({"messages":[{"role":"system","content":"Be brief"},
      {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
      "max_tokens":5,"max_completion_tokens":9})",
                            ApiKind::kChat);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.max_tokens, 9);
}

TEST(OpenAiRequestTest, ListsOfPromptsAndN) {
  OpenAiRequest r = ParseOk(R"({"prompt":["a","bc"],"n":3,"best_of":3})");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].text, "bc");
  EXPECT_EQ(r.n, 3);
  r = ParseOk(R"({"prompt":[[1,2],[3]]})");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_FALSE(r.prompts[0].text.has_value());
  EXPECT_EQ(r.prompts[1].tokens, std::vector<int32_t>{3});
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(ParseErr(R"({"prompt":"x","n":2,"best_of":4})").field(), "best_of");
  // n x prompts is bounded too.
  std::string many = R"({"n":16,"prompt":[)";
  for (int i = 0; i < 17; ++i) many += std::string(i ? "," : "") + "\"p\"";
  EXPECT_EQ(ParseErr(many + "]}").field(), "n");
}

TEST(OpenAiRequestTest, LogprobsEchoAndMaxTokensZero) {
  OpenAiRequest r = ParseOk(R"({"prompt":"x","logprobs":5,"echo":true,"max_tokens":0})");
  EXPECT_EQ(r.params.logprobs, 5);
  EXPECT_EQ(r.params.prompt_logprobs, 5);
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.max_tokens, 0);
  r = ParseOk(R"({"prompt":"x","logprobs":0})");
  EXPECT_EQ(r.params.logprobs, 0);
  EXPECT_EQ(r.params.prompt_logprobs, -1);  // no echo: the prompt is not scored
  r = ParseOk(R"({"prompt":"x","echo":true})");
  EXPECT_EQ(r.params.logprobs, -1);
  EXPECT_EQ(r.params.prompt_logprobs, -1);
  EXPECT_EQ(ParseErr(R"({"prompt":"x","logprobs":21})").field(), "logprobs");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","logprobs":-1})").field(), "logprobs");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","echo":1})").field(), "echo");

  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  r = ParseOk("{" + msgs + R"(,"logprobs":true,"top_logprobs":20})", ApiKind::kChat);
  EXPECT_EQ(r.params.logprobs, 20);
  EXPECT_EQ(r.params.prompt_logprobs, -1);
  EXPECT_EQ(ParseOk("{" + msgs + R"(,"logprobs":true})", ApiKind::kChat).params.logprobs, 0);
  EXPECT_EQ(ParseOk("{" + msgs + R"(,"logprobs":false})", ApiKind::kChat).params.logprobs, -1);
  EXPECT_EQ(ParseErr("{" + msgs + R"(,"top_logprobs":2})", ApiKind::kChat).field(), "top_logprobs");
  EXPECT_EQ(ParseErr("{" + msgs + R"(,"logprobs":3})", ApiKind::kChat).field(), "logprobs");
  EXPECT_EQ(ParseErr("{" + msgs + R"(,"max_tokens":0})", ApiKind::kChat).field(), "max_tokens");
}

TEST(OpenAiRequestTest, BrokenJsonIsInvalidArgument) {
  EXPECT_EQ(ParseErr("{\"prompt\": ").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseErr("[1,2]").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseErr("").code(), StatusCode::kInvalidArgument);
}

TEST(OpenAiRequestTest, RejectsBadValuesNamingTheField) {
  Status s = ParseErr(R"({"prompt":"x","max_tokens":-1})");
  EXPECT_EQ(s.field(), "max_tokens");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","temperature":-0.1})").field(), "temperature");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","top_p":0})").field(), "top_p");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","max_tokens":"5"})").field(), "max_tokens");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","stop":[1]})").field(), "stop");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","n":0})").field(), "n");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","n":17})").field(), "n");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","stream":"yes"})").field(), "stream");
  EXPECT_EQ(ParseErr(R"({"prompt":["a",[1]]})").field(), "prompt");
  EXPECT_EQ(ParseErr(R"({"prompt":[[1],[-1]]})").field(), "prompt");
  EXPECT_EQ(ParseErr(R"({"prompt":[1.5]})").field(), "prompt");
  EXPECT_EQ(ParseErr(R"({"max_tokens":3})").field(), "prompt");
  EXPECT_EQ(ParseErr(R"({"prompt":"x","kv_transfer_params":3})").field(), "kv_transfer_params");
  // The fields are the KV connector's to check (connector/kv_transfer_params.h); the
  // object is kept as it is.
  EXPECT_TRUE(ParseOk(R"({"prompt":"x","kv_transfer_params":{"do_remote_decode":null,
                         "remote_block_ids":[1,2],"remote_port":5}})")
                  .kv_transfer_params.is_object());
  EXPECT_EQ(ParseErr(R"({"messages":[]})", ApiKind::kChat).field(), "messages");
  EXPECT_EQ(ParseErr(R"({"messages":[{"content":"x"}]})", ApiKind::kChat).field(), "messages");
}

TEST(OpenAiRequestTest, ErrorJsonHasOpenAiShape) {
  auto j = ErrorJson(400, "max_tokens: bad", "max_tokens");
  EXPECT_EQ(j["error"]["message"], "max_tokens: bad");
  EXPECT_EQ(j["error"]["type"], "BadRequestError");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_TRUE(ErrorJson(404, "m", "")["error"]["param"].is_null());
  EXPECT_EQ(HttpStatusFor(NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x")), 400);
}

TEST(OpenAiResponseTest, ChunksAndInvalidUtf8) {
  ResponseContext ctx{ApiKind::kChat, "chatcmpl-1", "tiny", 1};
  auto role = StreamChunk(ctx, "", std::nullopt, true, false);
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(role["choices"][0]["delta"]["content"], "");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  auto usage = UsageChunk(ctx, {3, 4, 0});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  // Invalid UTF-8 never breaks serialisation.
  EXPECT_NE(SseEvent(StreamChunk(ctx, "a\xC3", "stop", false, false)).find("data: {"),
            std::string::npos);
  auto full = FullResponse({ApiKind::kCompletion, "cmpl-1", "tiny", 1},
                           {{0, "hi", "length", nullptr}}, {1, 2, 0}, nullptr);
  EXPECT_TRUE(full.contains("kv_transfer_params"));
  EXPECT_TRUE(full["kv_transfer_params"].is_null());
  EXPECT_EQ(full["choices"][0]["text"], "hi");
}

}  // namespace
}  // namespace ferry::server
