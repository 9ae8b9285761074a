// `ferry proxy`: the disaggregation proxy, flag-compatible with vLLM's Mooncake connector
// proxy: --prefill URL [BOOTSTRAP_PORT] (repeatable), --decode URL (repeatable).
#include <fmt/core.h>

#include <cstdlib>
#include <memory>

#include "command.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "proxy/proxy_server.h"
#include "stop_signals.h"

namespace {

struct ProxyFlags {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::vector<std::vector<std::string>> prefill;
  std::vector<std::string> decode;
  double health_interval_s = 2.0;
  double probe_timeout_s = 2.0;
  double request_timeout_s = 600.0;
  std::string secret;
  std::string api_key;
};

int RunProxy(const ProxyFlags& flags) {
  ferry::proxy::ProxyOptions options;
  options.host = flags.host;
  options.port = flags.port;
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  options.health_interval = ms(flags.health_interval_s);
  options.probe_timeout = ms(flags.probe_timeout_s);
  options.request_timeout = ms(flags.request_timeout_s);
  options.secret = flags.secret.empty() ? ferry::SecretFromEnvironment() : flags.secret;
  options.api_key = flags.api_key;
  if (const char* env = std::getenv("VLLM_API_KEY"); options.api_key.empty() && env != nullptr) {
    options.api_key = env;
  }
  if (!options.api_key.empty()) {
    FERRY_LOG_INFO(
        "proxy: API key set: clients send \"Authorization: Bearer <key>\" on /v1/*; the "
        "instances get the same header");
  }
  if (options.secret.empty()) {
    FERRY_LOG_WARN(
        "proxy: no shared secret (--secret or FERRY_KV_SECRET): decoders cannot tell the "
        "bootstrap addresses it sends from a client's");
  }
  for (const auto& group : flags.prefill) {
    auto backend = ferry::proxy::ParseBackendUrl(group.at(0));
    if (!backend.ok()) {
      fmt::print(stderr, "ferry proxy: --prefill: {}\n", backend.status().message());
      return 2;
    }
    if (group.size() > 1) {
      int p = 0;
      try {
        p = std::stoi(group[1]);
      } catch (...) {
        p = -1;
      }
      if (p <= 0 || p > 65535) {
        fmt::print(stderr, "ferry proxy: --prefill {} {}: bootstrap port must be 1..65535\n",
                   group[0], group[1]);
        return 2;
      }
      backend->bootstrap_port = static_cast<uint16_t>(p);
    }
    options.prefill.push_back(*backend);
  }
  for (const auto& url : flags.decode) {
    auto backend = ferry::proxy::ParseBackendUrl(url);
    if (!backend.ok()) {
      fmt::print(stderr, "ferry proxy: --decode: {}\n", backend.status().message());
      return 2;
    }
    options.decode.push_back(*backend);
  }

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  const sigset_t sigs = ferry::cli::BlockStopSignals();

  auto proxy = ferry::proxy::ProxyServer::Create(options);
  if (!proxy.ok()) {
    fmt::print(stderr, "ferry proxy: {}\n", proxy.status().ToString());
    return 1;
  }
  const int sig = ferry::cli::WaitForStopSignal(sigs);
  FERRY_LOG_INFO("proxy: signal {}, shutting down", sig);
  (*proxy)->Stop();
  return 0;
}

}  // namespace

FERRY_REGISTER_COMMAND(
    proxy, "proxy", "Disaggregated prefill/decode proxy (serves clients on --port)",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto flags = std::make_shared<ProxyFlags>();
      cmd.add_option("--host", flags->host, "Address to listen on")->capture_default_str();
      cmd.add_option("--port", flags->port, "Port to listen on")->capture_default_str();
      cmd.add_option("--prefill", flags->prefill,
                     "Prefill instance: URL [BOOTSTRAP_PORT] (repeatable; port default 8998)")
          ->expected(1, 2)
          ->required();
      cmd.add_option("--decode", flags->decode, "Decode instance URL (repeatable)")->required();
      cmd.add_option("--health-interval", flags->health_interval_s,
                     "Seconds between health probes of each instance")
          ->capture_default_str()
          ->check(CLI::Range(0.05, 3600.0));
      cmd.add_option("--probe-timeout", flags->probe_timeout_s,
                     "Seconds a health probe, or connecting to an instance, may take")
          ->capture_default_str()
          ->check(CLI::Range(0.05, 600.0));
      cmd.add_option("--request-timeout", flags->request_timeout_s,
                     "Seconds an instance may take to answer (and between reads of a stream)")
          ->capture_default_str()
          ->check(CLI::Range(0.1, 86400.0));
      cmd.add_option("--secret", flags->secret,
                     "Deployment secret (default: FERRY_KV_SECRET): signs what decoders are told");
      cmd.add_option("--api-key", flags->api_key,
                     "Require \"Authorization: Bearer KEY\" on /v1/* and send it to the "
                     "instances (default: $VLLM_API_KEY)");
      return [flags] { return RunProxy(*flags); };
    });
