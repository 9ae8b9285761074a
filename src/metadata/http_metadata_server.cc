#include "metadata/http_metadata_server.h"

#include "common/mutex.h"
#include "http/http_auth.h"

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

HttpMetadataServer::HttpMetadataServer(Options options)
    : options_(std::move(options)), auth_(options_.secret, "metadata") {}

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
  // Every route: authenticated when there is a secret, then answered and signed.
  auto route = [this](const char* method, auto handle) {
    server_->Route(method, options_.path,
                   [this, handle](const http::Request& req, http::Response& res) {
                     auto nonce = http::VerifyRequest(auth_, req);
                     if (!nonce.ok()) return res.Set(401, nonce.status().message(), kContentType);
                     std::optional<std::string> key = req.Param("key");
                     if (!key) {
                       res.Set(400, "missing key parameter", kContentType);
                     } else {
                       handle(*key, req, res);
                     }
                     http::SignReply(auth_, *nonce, res);
                   });
  };
  route("GET", [this](const std::string& key, const http::Request&, http::Response& res) {
    MutexLock lock(&mu_);
    auto it = values_.find(key);
    if (it == values_.end()) return res.Set(404, "metadata not found", kContentType);
    res.Set(200, it->second, kContentType);
  });
  route("PUT", [this](const std::string& key, const http::Request& req, http::Response& res) {
    MutexLock lock(&mu_);
    auto it = values_.find(key);
    const size_t old_bytes = it == values_.end() ? 0 : key.size() + it->second.size();
    const size_t new_total = total_bytes_ - old_bytes + key.size() + req.body.size();
    if ((it == values_.end() && values_.size() >= options_.max_keys) ||
        new_total > options_.max_total_bytes) {
      return res.Set(507,
                     "metadata server full (" + std::to_string(values_.size()) + " keys, " +
                         std::to_string(total_bytes_) + " bytes held)",
                     kContentType);
    }
    values_[key] = req.body;
    total_bytes_ = new_total;
    res.Set(200, "metadata updated", kContentType);
  });
  route("DELETE", [this](const std::string& key, const http::Request&, http::Response& res) {
    {
      MutexLock lock(&mu_);
      auto it = values_.find(key);
      if (it != values_.end()) {
        total_bytes_ -= key.size() + it->second.size();
        values_.erase(it);
      }
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
  MutexLock lock(&mu_);
  return values_.size();
}

}  // namespace ferry::metadata
