#include "demo/demo.h"

#include <fmt/core.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/child_process.h"
#include "demo/kv_moved.h"
#include "fixtures/make_model.h"

namespace ferry::demo {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string Tail(const std::string& path, size_t bytes = 1500) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return "";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  if (size > bytes) std::fseek(f, static_cast<long>(size - bytes), SEEK_SET);
  std::string out(std::min<size_t>(size, bytes), '\0');
  out.resize(std::fread(out.data(), 1, out.size(), f));
  std::fclose(f);
  return out;
}

class Demo {
 public:
  explicit Demo(DemoOptions f) : f_(std::move(f)) {}
  ~Demo() {
    for (auto it = procs_.rbegin(); it != procs_.rend(); ++it) (*it)->Stop(std::chrono::seconds(5));
    std::error_code ec;
    if (!f_.keep && !dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  int Run() {
    char tmpl[] = "/tmp/ferry-demo-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
    dir_ = tmpl;
    if (f_.free_ports) {
      f_.proxy_port = FreePort();
      f_.prefill_port = FreePort();
      f_.decode_port = FreePort();
      f_.colocated_port = FreePort();
      f_.bootstrap_port = FreePort();
    }
    std::string model = f_.model;
    if (model.empty()) {
      model = dir_ + "/model";
      if (Status s = fixtures::MakeModel(model, {}); !s.ok()) return Fail(s.ToString());
      fmt::print("model: a tiny generated Qwen2 checkpoint in {}\n", model);
      fmt::print(
          "its weights are random, so the text below is gibberish by design: what counts is "
          "that the disaggregated answer is byte-identical to a colocated instance's\n");
    }
    const std::string self = "/proc/self/exe";
    const std::string p_url = fmt::format("http://127.0.0.1:{}", f_.prefill_port);
    const std::string d_url = fmt::format("http://127.0.0.1:{}", f_.decode_port);
    fmt::print(
        "starting, as in the Mooncake connector guide:\n"
        "  ferry serve MODEL --port {} --kv-transfer-config "
        "'{{\"kv_connector\":\"MooncakeConnector\",\"kv_role\":\"kv_producer\"}}'\n"
        "  ferry serve MODEL --port {} --kv-transfer-config "
        "'{{\"kv_connector\":\"MooncakeConnector\",\"kv_role\":\"kv_consumer\"}}'\n"
        "  ferry proxy --port {} --prefill {} --decode {}\n"
        "and, to compare with, one colocated instance (no KV transfer):\n"
        "  ferry serve MODEL --port {}\n",
        f_.prefill_port, f_.decode_port, f_.proxy_port, p_url, d_url, f_.colocated_port);
    auto serve = [&](int port, const char* role) {
      std::vector<std::string> argv = {self,
                                       "serve",
                                       model,
                                       "--host",
                                       "127.0.0.1",
                                       "--port",
                                       std::to_string(port),
                                       "--served-model-name",
                                       "tiny"};
      if (role != nullptr) {
        argv.push_back("--kv-transfer-config");
        argv.push_back(
            fmt::format(R"({{"kv_connector":"MooncakeConnector","kv_role":"{}"}})", role));
      }
      return argv;
    };
    std::vector<std::pair<std::string, std::string>> env = {
        {"VLLM_MOONCAKE_BOOTSTRAP_PORT", std::to_string(f_.bootstrap_port)}};
    if (!Start("prefill", serve(f_.prefill_port, "kv_producer"), env)) return 1;
    if (!Start("decode", serve(f_.decode_port, "kv_consumer"), env)) return 1;
    if (!Start("colocated", serve(f_.colocated_port, nullptr), {})) return 1;
    if (!Start("proxy",
               {self, "proxy", "--port", std::to_string(f_.proxy_port), "--prefill", p_url,
                std::to_string(f_.bootstrap_port), "--decode", d_url},
               {})) {
      return 1;
    }
    if (!WaitHealthy()) return 1;
    fmt::print("all four are up; the proxy serves http://127.0.0.1:{}\n\n", f_.proxy_port);

    httplib::Client proxy("127.0.0.1", f_.proxy_port);
    proxy.set_read_timeout(60, 0);
    httplib::Client colocated("127.0.0.1", f_.colocated_port);
    colocated.set_read_timeout(60, 0);
    int rc = 0;
    // Greedy (temperature 0) with a fixed seed: one answer is right, on any path.
    rc |= Compare(proxy, colocated, "/v1/completions",
                  {{"model", "tiny"},
                   {"prompt", "The ferry carried the travellers across the river, and"},
                   {"max_tokens", 24},
                   {"temperature", 0},
                   {"seed", 7}});
    rc |= Compare(proxy, colocated, "/v1/chat/completions",
                  {{"model", "tiny"},
                   {"messages", {{{"role", "user"}, {"content", "What does a ferry carry?"}}}},
                   {"max_tokens", 24},
                   {"temperature", 0},
                   {"seed", 7}});

    rc |= ReportKvMoved();
    fmt::print("stopping the proxy, colocated, decode and prefill\n");
    if (f_.keep) fmt::print("logs kept in {}\n", dir_);
    fmt::print("{}\n", rc == 0 ? "demo OK" : "demo FAILED");
    return rc;
  }

 private:
  // Prints the KV bytes the prefill instance sent, from its /metrics; 0 when some moved.
  // An unreachable /metrics, or one without the KV transfer metrics, fails the demo: the
  // answers alone do not show that the KV went from prefill to decode.
  int ReportKvMoved() {
    httplib::Client prefill("127.0.0.1", f_.prefill_port);
    prefill.set_connection_timeout(2, 0);
    prefill.set_read_timeout(5, 0);
    auto m = prefill.Get("/metrics");
    if (!m || m->status != 200) {
      return Fail(
          "the prefill instance's /metrics did not answer" +
          (m ? ": HTTP " + std::to_string(m->status) : ": " + httplib::to_string(m.error())));
    }
    Result<KvMoved> kv = ParseKvMoved(m->body);
    if (!kv.ok()) return Fail("the prefill instance's " + kv.status().ToString());
    fmt::print("KV moved from prefill to decode: {:.0f} bytes in {:.0f} transfers, {:.3f} ms\n",
               kv->bytes, kv->transfers, kv->seconds * 1e3);
    if (kv->bytes <= 0 || kv->transfers <= 0) return Fail("no KV moved from prefill to decode");
    return 0;
  }

  int Fail(const std::string& msg) {
    fmt::print(stderr, "ferry demo: {}\n", msg);
    return 1;
  }

  bool Start(const std::string& name, const std::vector<std::string>& argv,
             const std::vector<std::pair<std::string, std::string>>& env) {
    std::string log = dir_ + "/" + name + ".log";
    auto p = ChildProcess::Spawn(argv, log, env);
    if (!p.ok()) {
      Fail("cannot start " + name + ": " + p.status().ToString());
      return false;
    }
    names_.push_back(name);
    procs_.push_back(std::move(*p));
    return true;
  }

  bool WaitHealthy() {
    httplib::Client c("127.0.0.1", f_.proxy_port);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    httplib::Client colocated("127.0.0.1", f_.colocated_port);
    colocated.set_connection_timeout(1, 0);
    colocated.set_read_timeout(2, 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      for (size_t i = 0; i < procs_.size(); ++i) {
        if (!procs_[i]->Running()) {
          Fail(names_[i] + " exited during start-up (a port in use? try --free-ports); its log:\n" +
               Tail(dir_ + "/" + names_[i] + ".log"));
          return false;
        }
      }
      auto res = c.Get("/health");  // every instance up, not merely degraded serving
      auto alone = colocated.Get("/health");
      if (res && res->status == 200 &&
          res->body.find("\"mode\":\"disaggregated\"") != std::string::npos && alone &&
          alone->status == 200) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Fail("the deployment was not healthy within 60 s; proxy log:\n" + Tail(dir_ + "/proxy.log"));
    return false;
  }

  // Sends `body` to the proxy (prefill -> decode) and to the colocated instance, prints
  // both answers and whether they are byte-identical; 0 when they are.
  int Compare(httplib::Client& proxy, httplib::Client& colocated, const std::string& path,
              const nlohmann::json& body) {
    std::string disaggregated, alone;
    if (!Ask(proxy, path, body, "disaggregated (proxy -> prefill -> decode)", &disaggregated) ||
        !Ask(colocated, path, body, "colocated (one instance)", &alone)) {
      return 1;
    }
    const bool same = disaggregated == alone;
    fmt::print("  byte-identical: {}\n\n", same ? "yes" : "NO");
    if (!same) Fail(path + ": the disaggregated answer differs from the colocated one");
    return same ? 0 : 1;
  }

  // POSTs `body`, prints the answer's text under `label`, stores it in `text`.
  bool Ask(httplib::Client& c, const std::string& path, const nlohmann::json& body,
           const std::string& label, std::string* text) {
    auto start = std::chrono::steady_clock::now();
    auto res = c.Post(path, body.dump(), "application/json");
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!res) {
      Fail(path + ": no answer: " + httplib::to_string(res.error()));
      return false;
    }
    auto j = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
    if (res->status != 200 || j.is_discarded() || !j.contains("choices")) {
      Fail(path + ": HTTP " + std::to_string(res->status) + ": " + res->body);
      return false;
    }
    const auto& ch = j["choices"][0];
    *text = ch.contains("text") ? ch["text"].get<std::string>()
                                : ch["message"]["content"].get<std::string>();
    fmt::print("POST {}  {}  ({:.1f} ms, {} prompt + {} completion tokens, finish: {})\n", path,
               label, ms, j["usage"]["prompt_tokens"].get<int>(),
               j["usage"]["completion_tokens"].get<int>(), ch["finish_reason"].get<std::string>());
    fmt::print("  -> {}\n", nlohmann::json(*text).dump());
    return true;
  }

  DemoOptions f_;
  std::string dir_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<ChildProcess>> procs_;
};

}  // namespace

int RunDemo(const DemoOptions& options) { return Demo(options).Run(); }

}  // namespace ferry::demo
