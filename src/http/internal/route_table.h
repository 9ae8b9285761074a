// RouteTable: exact (method, path) routes of an HttpServer. Filled before Start(), read
// by the loop thread afterwards (no lock: it is immutable then).
//
//   RouteTable routes;
//   routes.Add("GET", "/health", handler);
//   RouteMatch m = routes.Find("POST", "/health");   // m.handler == nullptr, m.allow == "GET"
#pragma once

#include <functional>
#include <map>
#include <string>

#include "http/http_response.h"

namespace ferry::http::internal {

struct RouteMatch {
  const Handler* handler = nullptr;  // null: no route (404 when allow is empty, else 405)
  std::string allow;                 // the path's methods, "GET, POST", when not matched
};

class RouteTable {
 public:
  // Adds or replaces the handler of (method, path).
  void Add(std::string method, std::string path, Handler handler) {
    by_path_[std::move(path)][std::move(method)] = std::move(handler);
  }

  RouteMatch Find(const std::string& method, const std::string& path) const {
    RouteMatch match;
    auto p = by_path_.find(path);
    if (p == by_path_.end()) return match;
    auto m = p->second.find(method);
    if (m != p->second.end()) {
      match.handler = &m->second;
      return match;
    }
    for (const auto& [name, handler] : p->second) {
      match.allow += match.allow.empty() ? name : ", " + name;
    }
    return match;
  }

 private:
  std::map<std::string, std::map<std::string, Handler>> by_path_;  // path -> method -> handler
};

}  // namespace ferry::http::internal
