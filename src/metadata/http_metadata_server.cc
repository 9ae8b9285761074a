#include "metadata/http_metadata_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>

#include "common/deadline.h"
#include "common/host_port.h"
#include "common/http_listen.h"

namespace ferry::metadata {
namespace {

constexpr char kContentType[] = "application/json; charset=utf-8";

// Checks the path and returns it as a regular expression (cpp-httplib routes are regexes).
Result<std::string> PathPattern(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return InvalidArgumentError("metadata server path '" + path + "' must start with '/'");
  }
  std::string pattern;
  for (char c : path) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '-' || c == '_' || c == '.';
    if (!ok) {
      return InvalidArgumentError("metadata server path '" + path +
                                  "' may hold only letters, digits, '/', '-', '_' and '.'");
    }
    if (c == '.') pattern += '\\';
    pattern += c;
  }
  return pattern;
}

}  // namespace

HttpMetadataServer::HttpMetadataServer(Options options)
    : options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {}

HttpMetadataServer::~HttpMetadataServer() { Stop(); }

Result<std::unique_ptr<HttpMetadataServer>> HttpMetadataServer::Create(const Options& options) {
  FERRY_ASSIGN_OR_RETURN(std::string pattern, PathPattern(options.path));
  std::unique_ptr<HttpMetadataServer> self(new HttpMetadataServer(options));
  httplib::Server& srv = *self->server_;
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.set_keep_alive_timeout(1);
  self->InstallRoutes(pattern);

  // http::Listen binds with SO_REUSEADDR only: cpp-httplib's default also sets
  // SO_REUSEPORT, which would let a second server bind the same port and silently split
  // the keys between two maps.
  const std::string where = HostPort{options.host, options.port}.ToString();
  auto port = http::Listen(srv, options.host, options.port, &self->listener_);
  if (!port.ok()) {
    return UnavailableError("metadata server cannot listen on " + where + ": " +
                            port.status().message());
  }
  self->port_ = *port;
  return self;
}

void HttpMetadataServer::InstallRoutes(const std::string& pattern) {
  server_->Get(pattern, [this](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("key")) {
      res.status = 400;
      res.set_content("missing key parameter", kContentType);
      return;
    }
    std::string key = req.get_param_value("key");
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(key);
    if (it == values_.end()) {
      res.status = 404;
      res.set_content("metadata not found", kContentType);
      return;
    }
    res.status = 200;
    res.set_content(it->second, kContentType);
  });
  server_->Put(pattern, [this](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("key")) {
      res.status = 400;
      res.set_content("missing key parameter", kContentType);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      values_[req.get_param_value("key")] = req.body;
    }
    res.status = 200;
    res.set_content("metadata updated", kContentType);
  });
  server_->Delete(pattern, [this](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("key")) {
      res.status = 400;
      res.set_content("missing key parameter", kContentType);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      values_.erase(req.get_param_value("key"));
    }
    res.status = 200;
    res.set_content("metadata deleted", kContentType);
  });
}

void HttpMetadataServer::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!listener_.joinable()) return;
  server_->stop();  // Create() returned only once the listener ran, so this takes effect
  listener_.join();
}

std::string HttpMetadataServer::url() const {
  return "http://" + HostPort{options_.host, port_}.ToString() + options_.path;
}

size_t HttpMetadataServer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

}  // namespace ferry::metadata
