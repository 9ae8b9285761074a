// Helpers of the LlmEngine tests (scheduler_test.cc, llm_engine_connector_test.cc): prompts,
// the fake model's expected text, collecting a stream, starting an engine.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "fake_model.h"

namespace ferry::engine::testing {

inline std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back('A' + (i * 7 + seed * 13) % 26);
  return t;
}

inline std::string Expected(std::vector<int32_t> ctx, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    int32_t t = FakeNextToken(ctx);
    out.push_back(static_cast<char>(t));
    ctx.push_back(t);
  }
  return out;
}

struct Collected {
  std::string text;
  std::string finish_reason;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;
  Status error;
};

inline Collected Collect(RequestStream& s) {
  Collected c;
  const Deadline d = Deadline::In(std::chrono::seconds(20));
  while (!d.Expired()) {
    RequestOutput o;
    if (s.Next(d, &o) != RequestStream::Poll::kOutput) break;
    const RequestOutput* out = &o;
    c.text += out->text;
    if (out->finished) {
      c.finish_reason = out->finish_reason;
      c.completion_tokens = out->completion_tokens;
      c.cached_tokens = out->cached_tokens;
      c.error = out->error;
      break;
    }
  }
  return c;
}

// `connector` (may be null) is attached before the engine starts.
inline std::unique_ptr<LlmEngine> StartEngine(
    EngineOptions opts, int32_t eos_after = 0,
    std::chrono::microseconds delay = std::chrono::microseconds(0),
    std::unique_ptr<KvConnector> connector = nullptr) {
  auto e = LlmEngine::Create(std::make_unique<FakeModel>(eos_after, delay),
                             std::make_shared<ByteTokenizer>(), opts);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (connector) {
    EXPECT_TRUE((*e)->AttachKvConnector(std::move(connector)).ok());
  }
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(e).value();
}

inline GenerateRequest Greedy(std::string id, std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt_tokens = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  return r;
}

}  // namespace ferry::engine::testing
