// HttpMetadataServer: a small in-memory server of Mooncake's HTTP metadata contract, for
// tests, the demo and `ferry metadata-server`.
//
//   HttpMetadataServer::Options options;  // 127.0.0.1, a free port, /metadata
//   FERRY_ASSIGN_OR_RETURN(auto server, HttpMetadataServer::Create(options));
//   auto store = MetadataStore::Create(server->url());  // "http://127.0.0.1:<port>/metadata"
//   ...
//   server->Stop();  // or let the destructor do it
//
// Contract served at `path` (anything else answers 404):
//   GET    path?key=K          200 + value, 404 "metadata not found"
//   PUT    path?key=K  body=V  200 "metadata updated"
//   DELETE path?key=K          200 "metadata deleted" (also when absent)
// A request without a key parameter answers 400. Values are kept as opaque bytes. The
// path is matched exactly; the HTTP layer is http::HttpServer (src/http), so every limit
// of docs/http_server.md applies (a body over max_body_bytes, 16 MiB by default, is
// answered 413 before it is read).
//
// Owns an HttpServer (one loop thread, four workers); Stop() and the destructor stop and
// join them. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/message_auth.h"
#include "common/mutex.h"
#include "ferry/status.h"
#include "http/http_server_options.h"

namespace ferry::http {
class HttpServer;
}  // namespace ferry::http

namespace ferry::metadata {

class HttpMetadataServer {
 public:
  struct Options {
    // Address to listen on. Default: "127.0.0.1".
    std::string host = "127.0.0.1";
    // Port to listen on; 0 picks a free one (see port()). Default: 0.
    uint16_t port = 0;
    // URL path served; '/' followed by letters, digits, '/', '-', '_' or '.'.
    // Default: "/metadata".
    std::string path = "/metadata";
    // Limits and deadlines of the HTTP layer. Default: the HttpLimits defaults with
    // max_body_bytes 16 MiB (a segment descriptor is a few KiB).
    http::HttpLimits http_limits = {.max_body_bytes = 16 << 20};
    // The deployment's shared secret: when set, every request needs a valid X-Ferry-Auth
    // tag (message_auth.h, channel "metadata"; 401 otherwise) and replies are signed.
    // Default: "" (open, as Mooncake's metadata server).
    std::string secret = "";
    // Most keys and bytes (keys plus values) held; a PUT beyond either is refused with
    // 507. Default: 100,000 keys, 1 GiB.
    size_t max_keys = 100000;
    size_t max_total_bytes = size_t{1} << 30;
  };

  // Binds and starts serving before returning. Errors: InvalidArgument for a bad path;
  // Unavailable when the address cannot be bound (in use, not local); Internal if the
  // listener does not start within 5 seconds.
  static Result<std::unique_ptr<HttpMetadataServer>> Create(const Options& options);

  ~HttpMetadataServer();
  HttpMetadataServer(const HttpMetadataServer&) = delete;
  HttpMetadataServer& operator=(const HttpMetadataServer&) = delete;

  // Stops accepting, lets requests in progress finish (bounded by the HTTP layer's
  // stop_grace, 2 s) and joins the threads. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  // "http://host:port/path": the connection string for MetadataStore::Create.
  std::string url() const;
  // Number of keys held.
  size_t size() const;

 private:
  explicit HttpMetadataServer(Options options);
  void InstallRoutes();

  const Options options_;
  MessageAuth auth_;
  uint16_t port_ = 0;
  std::unique_ptr<http::HttpServer> server_;

  mutable Mutex mu_;
  std::unordered_map<std::string, std::string> values_ FERRY_GUARDED_BY(mu_);
  size_t total_bytes_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::metadata
