#include "proxy/proxy_options.h"

#include "common/host_port.h"

namespace ferry::proxy {

Result<Backend> ParseBackendUrl(const std::string& url) {
  std::string rest = url;
  const std::string scheme = "http://";
  if (rest.rfind("https://", 0) == 0) {
    return InvalidArgumentError("backend '" + url + "': https is not supported; use http://");
  }
  if (rest.rfind(scheme, 0) == 0) rest = rest.substr(scheme.size());
  auto slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  auto hp = ParseHostPort(rest, 80);
  if (!hp.ok()) return hp.status().WithContext("backend URL");
  Backend b;
  b.host = hp->host;
  b.port = hp->port;
  b.url = "http://" + hp->ToString();
  b.bootstrap_port = 8998;
  return b;
}

}  // namespace ferry::proxy
