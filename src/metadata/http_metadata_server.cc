#include "metadata/http_metadata_server.h"

#include "common/host_port.h"
#include "http/http_server.h"

namespace ferry::metadata {
namespace {

constexpr char kContentType[] = "application/json; charset=utf-8";

// Checks that the path is '/' followed by letters, digits, '/', '-', '_' or '.'.
Status CheckPath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return InvalidArgumentError("metadata server path '" + path + "' must start with '/'");
  }
  for (char c : path) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '-' || c == '_' || c == '.';
    if (!ok) {
      return InvalidArgumentError("metadata server path '" + path +
                                  "' may hold only letters, digits, '/', '-', '_' and '.'");
    }
  }
  return OkStatus();
}

}  // namespace

HttpMetadataServer::HttpMetadataServer(Options options) : options_(std::move(options)) {}

HttpMetadataServer::~HttpMetadataServer() { Stop(); }

Result<std::unique_ptr<HttpMetadataServer>> HttpMetadataServer::Create(const Options& options) {
  FERRY_RETURN_IF_ERROR(CheckPath(options.path));
  std::unique_ptr<HttpMetadataServer> self(new HttpMetadataServer(options));
  http::HttpServerOptions http_options;
  http_options.name = "metadata";
  http_options.worker_threads = 4;
  http_options.limits = options.http_limits;
  auto server = http::HttpServer::Create(std::move(http_options));
  if (!server.ok()) return server.status().WithContext("metadata server");
  self->server_ = std::move(server).value();
  self->InstallRoutes();
  // HttpServer binds with SO_REUSEADDR only, never SO_REUSEPORT, which would let a second
  // server bind the same port and silently split the keys between two maps.
  const std::string where = HostPort{options.host, options.port}.ToString();
  Status started = self->server_->Start(options.host, options.port);
  if (!started.ok()) {
    return UnavailableError("metadata server cannot listen on " + where + ": " + started.message());
  }
  self->port_ = self->server_->port();
  return self;
}

void HttpMetadataServer::InstallRoutes() {
  server_->Route("GET", options_.path, [this](const http::Request& req, http::Response& res) {
    std::optional<std::string> key = req.Param("key");
    if (!key) return res.Set(400, "missing key parameter", kContentType);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(*key);
    if (it == values_.end()) return res.Set(404, "metadata not found", kContentType);
    res.Set(200, it->second, kContentType);
  });
  server_->Route("PUT", options_.path, [this](const http::Request& req, http::Response& res) {
    std::optional<std::string> key = req.Param("key");
    if (!key) return res.Set(400, "missing key parameter", kContentType);
    {
      std::lock_guard<std::mutex> lock(mu_);
      values_[*key] = req.body;
    }
    res.Set(200, "metadata updated", kContentType);
  });
  server_->Route("DELETE", options_.path, [this](const http::Request& req, http::Response& res) {
    std::optional<std::string> key = req.Param("key");
    if (!key) return res.Set(400, "missing key parameter", kContentType);
    {
      std::lock_guard<std::mutex> lock(mu_);
      values_.erase(*key);
    }
    res.Set(200, "metadata deleted", kContentType);
  });
}

void HttpMetadataServer::Stop() {
  if (server_) server_->Stop();  // idempotent and thread-safe
}

std::string HttpMetadataServer::url() const {
  return "http://" + HostPort{options_.host, port_}.ToString() + options_.path;
}

size_t HttpMetadataServer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

}  // namespace ferry::metadata
