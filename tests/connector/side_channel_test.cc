#include "connector/side_channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <zmq.hpp>

namespace ferry::connector {
namespace {

KvPullRequest Request(const std::string& id) {
  KvPullRequest r;
  r.remote_hostname = "127.0.0.1";
  r.remote_port = 1234;
  r.req_blocks[id] = {"xfer-" + id, {{1, 2}}};
  r.kv_caches_base_addr = {4096};
  r.block_lens = {64};
  return r;
}

TEST(SideChannelTest, RequestsAreAnsweredFromAnyThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  auto server = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    std::lock_guard lock(mu);
    workers.emplace_back([call = std::move(call)]() mutable {
      KvPullReply reply;
      for (const auto& [id, rb] : call.request().req_blocks) reply.ok_reqs.push_back(id);
      call.Reply(reply);
    });
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::string ep = (*server)->endpoint();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      auto reply = SendPullRequest(ep, Request("r" + std::to_string(i)),
                                   Deadline::In(std::chrono::seconds(5)));
      if (reply.ok() && reply->status == PullStatus::kFinish &&
          reply->ok_reqs == std::vector<std::string>{"r" + std::to_string(i)}) {
        ok++;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 8);
  std::lock_guard lock(mu);
  for (auto& t : workers) t.join();
}

TEST(SideChannelTest, DroppedCallIsAnsweredWithAnError) {
  auto server = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call) {});
  ASSERT_TRUE(server.ok());
  auto reply =
      SendPullRequest((*server)->endpoint(), Request("x"), Deadline::In(std::chrono::seconds(5)));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, PullStatus::kError);
}

TEST(SideChannelTest, MalformedMessageGetsAnErrorAndServerKeepsServing) {
  auto server = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call call) {
    call.Reply({PullStatus::kFinish, {"ok"}, {}, ""});
  });
  ASSERT_TRUE(server.ok());
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.connect((*server)->endpoint());
  raw.send(zmq::str_buffer("\xc1 definitely not msgpack"), zmq::send_flags::none);
  zmq::message_t msg;
  ASSERT_TRUE(raw.recv(msg));
  auto reply = DecodePullReply({static_cast<const char*>(msg.data()), msg.size()});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, PullStatus::kError);
  EXPECT_FALSE(reply->err_msg.empty());
  EXPECT_EQ((*server)->malformed_received(), 1u);
  auto good =
      SendPullRequest((*server)->endpoint(), Request("y"), Deadline::In(std::chrono::seconds(5)));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->status, PullStatus::kFinish);
}

TEST(SideChannelTest, NobodyListeningIsUnavailableQuickly) {
  std::string ep;
  {
    auto server = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call) {});
    ASSERT_TRUE(server.ok());
    ep = (*server)->endpoint();
  }
  auto start = std::chrono::steady_clock::now();
  auto reply = SendPullRequest(ep, Request("z"), Deadline::In(std::chrono::seconds(20)));
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable) << reply.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(SideChannelTest, PeerThatGoesAwayMidCallIsNoticedFast) {
  std::atomic<bool> got{false};
  std::vector<SideChannelServer::Call> parked;  // never answered in time
  auto created = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    parked.push_back(std::move(call));
    got = true;
  });
  ASSERT_TRUE(created.ok());
  std::string ep = (*created)->endpoint();
  std::thread killer([&] {
    while (!got) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    created->reset();  // the server (its socket) goes away; joins its thread
  });
  auto start = std::chrono::steady_clock::now();
  auto reply = SendPullRequest(ep, Request("w"), Deadline::In(std::chrono::seconds(20)));
  killer.join();
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable) << reply.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(SideChannelTest, SilentPeerHitsTheDeadline) {
  std::vector<SideChannelServer::Call> parked;
  std::mutex mu;
  auto server = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    std::lock_guard lock(mu);
    parked.push_back(std::move(call));
  });
  ASSERT_TRUE(server.ok());
  auto reply = SendPullRequest((*server)->endpoint(), Request("s"),
                               Deadline::In(std::chrono::milliseconds(300)));
  EXPECT_EQ(reply.status().code(), StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace ferry::connector
