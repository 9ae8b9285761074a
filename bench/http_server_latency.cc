// http_server_latency: the round trip of one small request (GET /health) over one
// keep-alive loopback connection, through Ferry's HttpServer (src/http) and, as the
// baseline measured in the same run, through cpp-httplib's Server (what Ferry used
// before). The client is cpp-httplib's Client in both cases.
//
//   http_server_latency --requests 1000
//
// cpp-httplib is measured twice: as Ferry's servers ran it (no TCP_NODELAY: its separate
// header and body writes then meet the client's delayed ACK) and with TCP_NODELAY, the
// fair comparison of the dispatch paths. Prints a human table, one JSON object line per
// server, and the ratios.
#include <httplib.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "http/http_server.h"

namespace {

struct Figures {
  double p50_us = 0, p99_us = 0, mean_us = 0;
  int failures = 0;
};

Figures Measure(uint16_t port, int requests) {
  httplib::Client client("127.0.0.1", port);
  client.set_keep_alive(true);
  Figures f;
  std::vector<double> us;
  for (int i = 0; i < requests + 100; ++i) {  // the first 100 warm up
    const double t0 = ferry::bench::NowSeconds();
    auto res = client.Get("/health");
    const double t1 = ferry::bench::NowSeconds();
    if (!res || res->status != 200) {
      f.failures++;
      continue;
    }
    if (i >= 100) us.push_back((t1 - t0) * 1e6);
  }
  double sum = 0;
  for (double v : us) sum += v;
  f.mean_us = us.empty() ? 0 : sum / static_cast<double>(us.size());
  f.p50_us = ferry::bench::Percentile(us, 0.5);
  f.p99_us = ferry::bench::Percentile(us, 0.99);
  return f;
}

void Print(const char* name, int requests, const Figures& f) {
  std::printf("%-16s %8d %10.1f %10.1f %10.1f %8d\n", name, requests, f.mean_us, f.p50_us, f.p99_us,
              f.failures);
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = std::stoi(ferry::bench::Flag(argc, argv, "--requests", "1000"));

  // The baselines: one cpp-httplib server without TCP_NODELAY (as before), one with it.
  httplib::Server old_servers[2];
  std::thread old_threads[2];
  int old_ports[2];
  for (int i = 0; i < 2; ++i) {
    old_servers[i].set_tcp_nodelay(i == 1);
    old_servers[i].Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    old_ports[i] = old_servers[i].bind_to_any_port("127.0.0.1");
    old_threads[i] = std::thread([&old_servers, i] { old_servers[i].listen_after_bind(); });
    while (!old_servers[i].is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ferry::http::HttpServerOptions options;
  options.name = "bench";
  auto server = ferry::http::HttpServer::Create(options);
  if (!server.ok()) return 1;
  (*server)->Route("GET", "/health", [](const ferry::http::Request&, ferry::http::Response& res) {
    res.Set(200, "ok", "text/plain");
  });
  if (!(*server)->Start("127.0.0.1", 0).ok()) return 1;

  const Figures httplib_plain = Measure(static_cast<uint16_t>(old_ports[0]), requests);
  const Figures httplib_nodelay = Measure(static_cast<uint16_t>(old_ports[1]), requests);
  const Figures ferry = Measure((*server)->port(), requests);
  for (int i = 0; i < 2; ++i) {
    old_servers[i].stop();
    old_threads[i].join();
  }
  (*server)->Stop();

  const std::pair<const char*, Figures> rows[] = {
      {"httplib", httplib_plain}, {"httplib+nodelay", httplib_nodelay}, {"ferry", ferry}};
  std::printf("%-16s %8s %10s %10s %10s %8s\n", "server", "requests", "mean_us", "p50_us", "p99_us",
              "failures");
  int failures = 0;
  for (const auto& [name, f] : rows) {
    Print(name, requests, f);
    failures += f.failures;
  }
  for (const auto& [name, f] : rows) {
    std::printf(
        "{\"bench\":\"http_server_latency\",\"server\":\"%s\",\"requests\":%d,\"mean_us\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"failures\":%d}\n",
        name, requests, f.mean_us, f.p50_us, f.p99_us, f.failures);
  }
  auto ratio = [](const Figures& a, const Figures& b) {
    return b.p50_us > 0 ? a.p50_us / b.p50_us : 0.0;
  };
  std::printf("p50 ratio ferry/httplib: %.3f, ferry/httplib+nodelay: %.2f\n",
              ratio(ferry, httplib_plain), ratio(ferry, httplib_nodelay));
  return failures == 0 ? 0 : 1;
}
