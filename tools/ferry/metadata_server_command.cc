// `ferry metadata-server`: serves Mooncake's HTTP metadata contract from memory until
// SIGINT or SIGTERM (see src/metadata/http_metadata_server.h and docs/metadata.md).
//
//   ferry metadata-server --host 127.0.0.1 --port 8080 --path /metadata
//
// Prints one line with the URL to use as the metadata connection string (with the real
// port when --port 0 asks for a free one), then serves. Exit code 0 after a signal, 1 when
// the server cannot start.
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "metadata/http_metadata_server.h"
#include "stop_signals.h"

namespace {

using ferry::metadata::HttpMetadataServer;

int RunMetadataServer(const HttpMetadataServer::Options& options) {
  ferry::InitLoggingFromEnv();
  const sigset_t signals = ferry::cli::BlockStopSignals();

  auto server = HttpMetadataServer::Create(options);
  if (!server.ok()) {
    fmt::print(stderr, "ferry metadata-server: {}\n", server.status().ToString());
    return 1;
  }
  fmt::print("ferry metadata-server listening on {}\n", (*server)->url());
  std::fflush(stdout);
  if (options.secret.empty()) {
    FERRY_LOG_WARN(
        "metadata-server: no secret (--secret or FERRY_KV_SECRET): anyone who reaches port {} "
        "can read, write and delete every key",
        (*server)->port());
  }
  int sig = ferry::cli::WaitForStopSignal(signals);
  FERRY_LOG_INFO("metadata-server: signal {}, stopping ({} keys held)", sig, (*server)->size());
  (*server)->Stop();
  return 0;
}

}  // namespace

FERRY_REGISTER_COMMAND(
    metadata_server, "metadata-server",
    "Serves the HTTP metadata contract (GET/PUT/DELETE path?key=K) from memory",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto options = std::make_shared<HttpMetadataServer::Options>();
      options->port = 8080;  // Mooncake's metadata server default
      cmd.add_option("--host", options->host, "Address to listen on")->capture_default_str();
      cmd.add_option("--port", options->port, "Port (0: pick a free one)")->capture_default_str();
      cmd.add_option("--path", options->path, "URL path served")->capture_default_str();
      cmd.add_option("--secret", options->secret,
                     "Deployment secret every request must be signed with (default: "
                     "FERRY_KV_SECRET; none: open)");
      return [options] {
        if (options->secret.empty()) options->secret = ferry::SecretFromEnvironment();
        return RunMetadataServer(*options);
      };
    });
