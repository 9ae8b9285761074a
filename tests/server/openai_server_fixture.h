// The OpenAiServer test fixture: the server over real HTTP (cpp-httplib client) with the
// engine on a fake model (engine/fake_model.h), and an SSE body splitter.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "../engine/fake_model.h"
#include "server/openai_server.h"

namespace ferry::server {

class OpenAiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith({}); }

  // (Re)starts engine and server; `so`'s port and model name are set here.
  void StartWith(OpenAiServerOptions so) {
    client_.reset();
    if (server_) server_->Stop();
    server_.reset();
    if (engine_) engine_->Stop();
    engine_.reset();
    engine::EngineOptions eo;
    eo.block_size = 4;
    eo.num_kv_blocks = 256;
    auto e = engine::LlmEngine::Create(
        std::make_unique<engine::testing::FakeModel>(0, std::chrono::microseconds(500)),
        std::make_shared<engine::testing::ByteTokenizer>(), eo);
    ASSERT_TRUE(e.ok());
    engine_ = std::move(e).value();
    ASSERT_TRUE(engine_->Start().ok());
    so.port = 0;
    so.served_model_name = "fake";
    auto s = OpenAiServer::Create(so, engine_.get());
    ASSERT_TRUE(s.ok());
    server_ = std::move(s).value();
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(20, 0);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    if (engine_) engine_->Stop();
  }

  httplib::Result Post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return client_->Post(path.c_str(), headers, body, "application/json");
  }

  std::unique_ptr<engine::LlmEngine> engine_;
  std::unique_ptr<OpenAiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

inline std::vector<nlohmann::json> SseEvents(const std::string& body, bool* saw_done) {
  std::vector<nlohmann::json> events;
  size_t pos = 0;
  *saw_done = false;
  for (size_t end; (end = body.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
    std::string ev = body.substr(pos, end - pos);
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    if (ev == "data: [DONE]") {
      *saw_done = true;
      continue;
    }
    events.push_back(nlohmann::json::parse(ev.substr(6)));
  }
  return events;
}

}  // namespace ferry::server
