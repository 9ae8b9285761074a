// HttpServer under hostile load: slow and idle clients, connection caps, a full queue,
// deadlines, and running out of file descriptors. Short timeouts keep the tests quick.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "http/http_server.h"
#include "raw_http.h"

namespace ferry::http {
namespace {

using namespace std::chrono_literals;
using testing::RawConnection;
using testing::RawResponse;

const char kGetHealth[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

std::unique_ptr<HttpServer> StartHealthServer(HttpServerOptions options) {
  auto server = HttpServer::Create(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  if (!server.ok()) return nullptr;
  (*server)->Route("GET", "/health",
                   [](const Request&, Response& res) { res.Set(200, "ok", "text/plain"); });
  EXPECT_TRUE((*server)->Start("127.0.0.1", 0).ok());
  return std::move(server).value();
}

// Milliseconds one GET /health takes on a new connection; -1 if it failed.
int64_t TimedHealthMs(uint16_t port) {
  const auto start = SteadyClock::now();
  RawResponse r = testing::Exchange(port, kGetHealth, 5s);
  if (r.status != 200) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const Deadline d = Deadline::In(timeout);
  while (!done()) {
    if (d.Expired()) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(HttpServerLimitsTest, SlowHeaderClientsDoNotDelayANormalRequestAndGet408) {
  HttpServerOptions options;
  options.worker_threads = 2;
  options.limits.header_timeout = 1500ms;
  auto server = StartHealthServer(options);
  ASSERT_NE(server, nullptr);
  constexpr int kSlow = 100;
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(std::make_unique<RawConnection>(server->port()));
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    const std::string request = "GET /health HTTP/1.1\r\nHost: t\r\nX-Long: aaaaaaaaaaaaaaaa";
    for (size_t i = 0; i < request.size() && !stop; ++i) {
      for (auto& c : slow) c->Send(std::string_view(&request[i], 1));
      std::this_thread::sleep_for(200ms);
    }
  });
  std::this_thread::sleep_for(500ms);  // every slow client has sent a few bytes
  for (int i = 0; i < 5; ++i) {
    const int64_t ms = TimedHealthMs(server->port());
    EXPECT_GE(ms, 0);
    EXPECT_LT(ms, 100);
  }
  // Each slow client is answered 408 once header_timeout has passed, however it trickles.
  int timed_out = 0;
  for (auto& c : slow) timed_out += c->Read(3s).status == 408 ? 1 : 0;
  stop = true;
  drip.join();
  EXPECT_EQ(timed_out, kSlow);
  EXPECT_EQ(server->stats().header_timeouts, static_cast<uint64_t>(kSlow));
}

TEST(HttpServerLimitsTest, SlowBodyGets408AfterBodyTimeout) {
  HttpServerOptions options;
  options.limits.body_timeout = 300ms;
  auto s = HttpServer::Create(options);
  ASSERT_TRUE(s.ok());
  (*s)->Route("POST", "/up", [](const Request&, Response& res) { res.Set(200, "", "text/plain"); });
  ASSERT_TRUE((*s)->Start("127.0.0.1", 0).ok());
  RawConnection c((*s)->port());
  ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab"));
  const auto start = SteadyClock::now();
  EXPECT_EQ(c.Read(3s).status, 408);
  EXPECT_GE(SteadyClock::now() - start, 250ms);
  EXPECT_EQ((*s)->stats().body_timeouts, 1u);
}

TEST(HttpServerLimitsTest, IdleKeepAliveConnectionIsClosedSilently) {
  HttpServerOptions options;
  options.limits.idle_timeout = 300ms;
  auto server = StartHealthServer(options);
  ASSERT_NE(server, nullptr);
  RawConnection c(server->port());
  ASSERT_TRUE(c.Send(kGetHealth));
  ASSERT_EQ(c.Read().status, 200);
  const auto start = SteadyClock::now();
  EXPECT_TRUE(c.WaitClosed(3s));
  EXPECT_GE(SteadyClock::now() - start, 250ms);
  EXPECT_EQ(server->stats().header_timeouts, 0u);
}

TEST(HttpServerLimitsTest, TwoThousandIdleConnectionsDoNotDelayANormalRequest) {
  ASSERT_GE(testing::RaiseFdLimit(8192), 4200u) << "needs 4,200 file descriptors";
  auto server = StartHealthServer({});
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> idle;
  // From four loopback addresses: 500 each stays under max_connections_per_client.
  const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};
  for (int i = 0; i < 2000; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server->port(), sources[i % 4]));
    ASSERT_TRUE(idle.back()->valid()) << i;
  }
  ASSERT_TRUE(WaitFor([&] { return server->stats().open_connections >= 2000; }, 5s));
  for (int i = 0; i < 5; ++i) {
    const int64_t ms = TimedHealthMs(server->port());
    EXPECT_GE(ms, 0);
    EXPECT_LT(ms, 100);
  }
  EXPECT_EQ(server->stats().refused_over_limit, 0u);
}

TEST(HttpServerLimitsTest, MaxConnectionsRefusesWith503) {
  HttpServerOptions options;
  options.limits.max_connections = 10;
  auto server = StartHealthServer(options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 10; ++i) held.push_back(std::make_unique<RawConnection>(server->port()));
  ASSERT_TRUE(WaitFor([&] { return server->stats().open_connections == 10; }, 2s));
  RawConnection extra(server->port());
  RawResponse r = extra.Read(2s);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("too many connections"), std::string::npos);
  EXPECT_TRUE(extra.WaitClosed(2s));
  EXPECT_EQ(server->stats().refused_over_limit, 1u);
  held.clear();
  ASSERT_TRUE(WaitFor([&] { return server->stats().open_connections == 0; }, 2s));
  EXPECT_EQ(testing::Exchange(server->port(), kGetHealth).status, 200);
}

TEST(HttpServerLimitsTest, MaxConnectionsPerClientRefusesWith503) {
  HttpServerOptions options;
  options.limits.max_connections_per_client = 3;
  auto server = StartHealthServer(options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawConnection>(server->port()));
  ASSERT_TRUE(WaitFor([&] { return server->stats().open_connections == 3; }, 2s));
  RawConnection fourth(server->port());
  EXPECT_EQ(fourth.Read(2s).status, 503);
  // Another client address is not affected.
  RawConnection other(server->port(), "127.0.0.2");
  ASSERT_TRUE(other.Send(kGetHealth));
  EXPECT_EQ(other.Read().status, 200);
}

TEST(HttpServerLimitsTest, FullQueueAnswers503) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  HttpServerOptions options;
  options.worker_threads = 1;
  options.limits.max_queued_requests = 1;
  auto s = HttpServer::Create(options);
  ASSERT_TRUE(s.ok());
  (*s)->Route("GET", "/block", [&](const Request&, Response& res) {
    running++;
    std::unique_lock lock(mu);
    cv.wait_for(lock, 10s, [&] { return release; });
    res.Set(200, "done", "text/plain");
  });
  ASSERT_TRUE((*s)->Start("127.0.0.1", 0).ok());
  const uint16_t port = (*s)->port();
  const char kBlock[] = "GET /block HTTP/1.1\r\nHost: t\r\n\r\n";
  RawConnection a(port), b(port), c(port);
  ASSERT_TRUE(a.Send(kBlock));
  ASSERT_TRUE(WaitFor([&] { return running.load() == 1; }, 2s));  // the worker is busy
  ASSERT_TRUE(b.Send(kBlock));                                    // waits in the queue
  ASSERT_TRUE(WaitFor([&] { return (*s)->stats().open_connections == 3; }, 2s));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(c.Send(kBlock));  // the queue is full
  EXPECT_EQ(c.Read(2s).status, 503);
  EXPECT_EQ((*s)->stats().overloaded_503, 1u);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(a.Read().status, 200);
  EXPECT_EQ(b.Read().status, 200);
}

// CPU seconds this process has used.
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int OpenFdCount() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) n += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  return n;
}

// The child: a server under a low fd limit, driven over two pipes. Commands: 'c' replies
// with the CPU time used so far (a double), 'q' stops and exits.
[[noreturn]] void EmfileChild(int cmd_fd, int reply_fd) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = static_cast<rlim_t>(OpenFdCount() + 4 + 12);  // loop fds + 12 connections
  ::setrlimit(RLIMIT_NOFILE, &lim);
  HttpServerOptions options;
  options.worker_threads = 1;
  auto server = StartHealthServer(options);
  uint16_t port = server ? server->port() : 0;
  if (::write(reply_fd, &port, sizeof(port)) != sizeof(port)) ::_exit(2);
  char cmd;
  while (::read(cmd_fd, &cmd, 1) == 1 && cmd == 'c') {
    double cpu = CpuSeconds();
    if (::write(reply_fd, &cpu, sizeof(cpu)) != sizeof(cpu)) ::_exit(2);
  }
  const uint64_t exhausted = server ? server->stats().accept_fd_exhausted : 0;
  server.reset();
  ::_exit(exhausted > 0 ? 0 : 3);
}

TEST(HttpServerLimitsTest, RunningOutOfFileDescriptorsDoesNotSpin) {
  int cmd[2], reply[2];
  ASSERT_EQ(::pipe(cmd), 0);
  ASSERT_EQ(::pipe(reply), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) EmfileChild(cmd[0], reply[1]);
  ::close(cmd[0]);
  ::close(reply[1]);
  uint16_t port = 0;
  ASSERT_EQ(::read(reply[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ASSERT_NE(port, 0);
  auto cpu = [&] {
    double v = -1;
    if (::write(cmd[1], "c", 1) != 1 || ::read(reply[0], &v, sizeof(v)) != sizeof(v)) return -1.0;
    return v;
  };
  {
    // 100 connections against room for about 12: most are refused (503 or a close).
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < 100; ++i) conns.push_back(std::make_unique<RawConnection>(port));
    const double before = cpu();
    std::this_thread::sleep_for(1s);
    const double used = cpu() - before;
    EXPECT_LT(used, 0.3) << "the accept loop spins while out of file descriptors";
    int refused = 0;
    for (auto& c : conns) refused += c->WaitClosed(100ms) ? 1 : 0;
    EXPECT_GT(refused, 50);
  }  // every connection closes: the server gets its descriptors back
  std::this_thread::sleep_for(300ms);
  RawResponse r;
  for (int attempt = 0; attempt < 20 && r.status != 200; ++attempt) {
    r = testing::Exchange(port, kGetHealth, 1s);
    if (r.status != 200) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 200) << "serves again once descriptors are free";
  ASSERT_EQ(::write(cmd[1], "q", 1), 1);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "the child saw no EMFILE (3) or failed (2)";
  ::close(cmd[1]);
  ::close(reply[0]);
}

}  // namespace
}  // namespace ferry::http
