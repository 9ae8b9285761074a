#include "metadata/http_metadata_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>

#include "common/deadline.h"
#include "common/host_port.h"

namespace ferry::metadata {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(5);
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
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind the
  // same port and silently split the keys between two maps. SO_REUSEADDR only.
  srv.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  self->InstallRoutes(pattern);

  const std::string where = HostPort{options.host, options.port}.ToString();
  if (options.port == 0) {
    int port = srv.bind_to_any_port(options.host);
    if (port <= 0) {
      return UnavailableError("metadata server cannot listen on " + where +
                              ": bind failed (is the address local?)");
    }
    self->port_ = static_cast<uint16_t>(port);
  } else {
    if (!srv.bind_to_port(options.host, options.port)) {
      return UnavailableError("metadata server cannot listen on " + where +
                              ": bind failed (port in use, or the address is not local?)");
    }
    self->port_ = options.port;
  }
  HttpMetadataServer* raw = self.get();
  self->listener_ = std::thread([raw] {
    raw->server_->listen_after_bind();
    raw->listener_done_.store(true);
  });

  // stop() is a no-op until the listener runs, so wait for it before handing out.
  Deadline deadline = Deadline::In(kStartTimeout);
  while (!srv.is_running()) {
    if (deadline.Expired() || self->listener_done_.load()) {
      self->Stop();
      return InternalError("metadata server on " + where + " did not start within 5 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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
  // cpp-httplib's stop() does nothing until the listener runs (Create() waited for that;
  // this only matters when Create() gives up), so wait for it to run or to end.
  while (!listener_done_.load() && !server_->is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
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
