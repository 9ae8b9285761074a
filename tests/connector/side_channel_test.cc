#include "connector/side_channel_client.h"
#include "connector/side_channel_server.h"

#include "common/message_auth.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <zmq.hpp>

namespace ferry::connector {
namespace {

// One client for the whole test binary, as a connector has.
Result<KvPullReply> SendPullRequest(const std::string& endpoint, const KvPullRequest& request,
                                    Deadline deadline) {
  static SideChannelClient* client = SideChannelClient::Create({})->release();
  return client->Call(endpoint, request, deadline);
}

KvPullRequest Request(const std::string& id);

// After a failed call, a call to a healthy server must be answered at once (the
// regression: ZeroMQ's I/O thread wedged and every later call waited out its deadline).
void ExpectALiveServerAnswersAtOnce() {
  auto live = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call call) {
    call.Reply({PullStatus::kFinish, {"ok"}, {}, ""});
  });
  ASSERT_TRUE(live.ok());
  auto start = std::chrono::steady_clock::now();
  auto good =
      SendPullRequest((*live)->endpoint(), Request("ok"), Deadline::In(std::chrono::seconds(10)));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

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

TEST(SideChannelTest, FailedCallDoesNotBreakLaterCalls) {
  // A call to a peer that vanished used to wedge ZeroMQ's I/O thread in the socket monitor
  // (its reader was closed before the socket), so every later call waited its deadline.
  for (int round = 0; round < 3; ++round) {
    std::string dead;
    {
      auto s = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call) {});
      ASSERT_TRUE(s.ok());
      dead = (*s)->endpoint();
    }
    auto r = SendPullRequest(dead, Request("d"), Deadline::In(std::chrono::seconds(5)));
    EXPECT_FALSE(r.ok());
  }
  ExpectALiveServerAnswersAtOnce();
}

// A TCP listener that never speaks: what a SIGSTOPped prefill looks like from outside.
struct SilentListener {
  int fd = -1;
  int port = 0;
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd, 64);
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd); }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port); }
};

TEST(SideChannelTest, PausedPeerDoesNotBreakLaterCalls) {
  SilentListener paused;
  for (int round = 0; round < 3; ++round) {
    auto r = SendPullRequest(paused.endpoint(), Request("p"),
                             Deadline::In(std::chrono::milliseconds(500)));
    EXPECT_FALSE(r.ok());
  }
  ExpectALiveServerAnswersAtOnce();
}

// Runs only as the child of PausedPrefillProcessDoesNotBreakLaterCalls: a side-channel
// server that parks every call, writing its endpoint to the pipe named in the environment.
TEST(SideChannelPeerProcess, ParkEveryCall) {
  const char* fd_text = std::getenv("FERRY_TEST_SC_PEER_FD");
  if (fd_text == nullptr) GTEST_SKIP() << "helper process for another test";
  std::vector<SideChannelServer::Call> parked;
  std::mutex mu;
  auto server = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    std::lock_guard lock(mu);
    parked.push_back(std::move(call));
  });
  ASSERT_TRUE(server.ok());
  std::string ep = (*server)->endpoint() + "\n";
  int fd = std::atoi(fd_text);
  ASSERT_EQ(::write(fd, ep.data(), ep.size()), static_cast<ssize_t>(ep.size()));
  ::close(fd);
  for (;;) ::pause();
}

void PrefillProcessFailureDoesNotBreakLaterCalls(int sig) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(p[0]);
    std::string fd = std::to_string(p[1]);
    ::setenv("FERRY_TEST_SC_PEER_FD", fd.c_str(), 1);
    ::execl("/proc/self/exe", "side_channel_peer", "--gtest_filter=SideChannelPeerProcess.*",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  std::string ep;
  char c;
  while (::read(p[0], &c, 1) == 1 && c != '\n') ep += c;
  ::close(p[0]);
  ASSERT_FALSE(ep.empty());
  std::thread pauser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(child, sig);
  });
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> callers;
  std::atomic<int> failed{0};
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&, i] {
      auto r = SendPullRequest(ep, Request("p" + std::to_string(i)),
                               Deadline::In(std::chrono::seconds(20)));
      if (!r.ok()) failed++;
    });
  }
  for (auto& t : callers) t.join();
  pauser.join();
  EXPECT_EQ(failed.load(), 10);
  // Heartbeats notice the paused peer within seconds, not at the deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));

  ExpectALiveServerAnswersAtOnce();
  ::kill(child, SIGCONT);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(SideChannelTest, PausedPrefillProcessDoesNotBreakLaterCalls) {
  PrefillProcessFailureDoesNotBreakLaterCalls(SIGSTOP);
}

TEST(SideChannelTest, KilledPrefillProcessDoesNotBreakLaterCalls) {
  PrefillProcessFailureDoesNotBreakLaterCalls(SIGKILL);
}

std::unique_ptr<SideChannelServer> AnsweringServer(const std::string& secret) {
  SideChannelServer::Options o;
  o.secret = secret;
  auto s = SideChannelServer::Create("127.0.0.1", 0, o, [](SideChannelServer::Call call) {
    KvPullReply reply;
    for (const auto& [id, rb] : call.request().req_blocks) reply.ok_reqs.push_back(id);
    call.Reply(reply);
  });
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<SideChannelClient> ClientWith(const std::string& secret) {
  SideChannelClient::Options o;
  o.secret = secret;
  return std::move(SideChannelClient::Create(o).value());
}

TEST(SideChannelAuthTest, SameSecretIsServed) {
  auto server = AnsweringServer("k1");
  auto client = ClientWith("k1");
  auto r = client->Call(server->endpoint(), Request("a"), Deadline::In(std::chrono::seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ok_reqs, std::vector<std::string>{"a"});
  EXPECT_EQ(server->unauthenticated_received(), 0u);
}

TEST(SideChannelAuthTest, WrongOrMissingSecretIsRefused) {
  auto server = AnsweringServer("k1");
  for (const char* secret : {"other", ""}) {
    auto client = ClientWith(secret);
    auto r = client->Call(server->endpoint(), Request("a"), Deadline::In(std::chrono::seconds(5)));
    if (std::string(secret).empty()) {
      // An unauthenticated client gets the server's refusal as an ERROR reply.
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->status, PullStatus::kError);
      EXPECT_NE(r->err_msg.find("FERRY_KV_SECRET"), std::string::npos) << r->err_msg;
    } else {
      // A client with another secret refuses the (unsigned) refusal too.
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().ToString();
    }
  }
  EXPECT_EQ(server->unauthenticated_received(), 2u);
}

TEST(SideChannelAuthTest, ClientWithSecretRefusesAnOpenServer) {
  auto server = AnsweringServer("");
  auto client = ClientWith("k1");
  auto r = client->Call(server->endpoint(), Request("a"), Deadline::In(std::chrono::seconds(5)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
}

TEST(SideChannelAuthTest, ReplayedRequestIsRefused) {
  std::atomic<int> handled{0};
  SideChannelServer::Options o;
  o.secret = "k1";
  auto server = SideChannelServer::Create("127.0.0.1", 0, o, [&](SideChannelServer::Call call) {
    handled++;
    call.Reply({PullStatus::kFinish, {"x"}, {}, ""});
  });
  ASSERT_TRUE(server.ok());
  MessageAuth auth("k1", "side-channel");
  std::string payload = EncodePullRequest(Request("x"));
  std::string tag = auth.Sign(payload).ToString();
  zmq::context_t ctx;
  for (int i = 0; i < 2; ++i) {
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.set(zmq::sockopt::rcvtimeo, 5000);
    raw.connect((*server)->endpoint());
    raw.send(zmq::buffer(payload), zmq::send_flags::sndmore);
    raw.send(zmq::buffer(tag), zmq::send_flags::none);
    zmq::message_t msg;
    ASSERT_TRUE(raw.recv(msg));
    auto reply = DecodePullReply({static_cast<const char*>(msg.data()), msg.size()});
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->status, i == 0 ? PullStatus::kFinish : PullStatus::kError);
    if (msg.more()) (void)raw.recv(msg);
  }
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ((*server)->unauthenticated_received(), 1u);
}

TEST(SideChannelAuthTest, ForgedReplyIsRefused) {
  // A "prefill" that knows no secret answers FINISH with a made-up MAC.
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  std::string ep = router.get(zmq::sockopt::last_endpoint);
  std::thread fake([&] {
    std::vector<zmq::message_t> frames;
    router.set(zmq::sockopt::rcvtimeo, 5000);
    for (;;) {
      zmq::message_t m;
      if (!router.recv(m)) return;
      bool more = m.more();
      frames.push_back(std::move(m));
      if (!more) break;
    }
    router.send(frames[0], zmq::send_flags::sndmore);
    std::string reply = EncodePullReply({PullStatus::kFinish, {"a"}, {}, ""});
    router.send(zmq::buffer(reply), zmq::send_flags::sndmore);
    router.send(zmq::str_buffer("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
                zmq::send_flags::none);
  });
  auto client = ClientWith("k1");
  auto r = client->Call(ep, Request("a"), Deadline::In(std::chrono::seconds(5)));
  fake.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().ToString();
}

TEST(SideChannelClientTest, DestructionEndsCallsInFlightAtOnce) {
  std::vector<SideChannelServer::Call> parked;
  std::mutex mu;
  auto server = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    std::lock_guard lock(mu);
    parked.push_back(std::move(call));
  });
  ASSERT_TRUE(server.ok());
  auto client = ClientWith("");
  std::atomic<int> aborted{0};
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client
                    ->Start((*server)->endpoint(), Request("q" + std::to_string(i)),
                            Deadline::In(std::chrono::seconds(480)),
                            [&](Result<KvPullReply> r) {
                              if (r.status().code() == StatusCode::kAborted) aborted++;
                            })
                    .ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(client->in_flight(), 20u);
  auto start = std::chrono::steady_clock::now();
  client.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(aborted.load(), 20);
}

TEST(SideChannelClientTest, CallsInFlightAreCapped) {
  std::vector<SideChannelServer::Call> parked;
  std::mutex mu;
  auto server = SideChannelServer::Create("127.0.0.1", 0, [&](SideChannelServer::Call call) {
    std::lock_guard lock(mu);
    parked.push_back(std::move(call));
  });
  ASSERT_TRUE(server.ok());
  SideChannelClient::Options o;
  o.max_calls = 3;
  auto client = std::move(SideChannelClient::Create(o).value());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client
                    ->Start((*server)->endpoint(), Request("c" + std::to_string(i)),
                            Deadline::In(std::chrono::seconds(30)), [](Result<KvPullReply>) {})
                    .ok());
  }
  Status over = client->Start((*server)->endpoint(), Request("c9"),
                              Deadline::In(std::chrono::seconds(30)), [](Result<KvPullReply>) {});
  EXPECT_EQ(over.code(), StatusCode::kResourceExhausted);
}

TEST(SideChannelServerTest, OversizedMessageDropsOnlyThatSender) {
  auto server = AnsweringServer("");
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(server->endpoint());
  std::string huge(64 << 20, 'x');
  raw.send(zmq::buffer(huge), zmq::send_flags::none);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server->requests_received(), 0u);
  auto client = ClientWith("");
  auto r = client->Call(server->endpoint(), Request("ok"), Deadline::In(std::chrono::seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, PullStatus::kFinish);
}

}  // namespace
}  // namespace ferry::connector
