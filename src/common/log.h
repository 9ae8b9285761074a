// Logging: thin macros over spdlog so that call sites do not depend on the backend.
//
// Example:
//   std::string host = "127.0.0.1";
//   int port = 17000;
//   FERRY_LOG_INFO("listening on {}:{}", host, port);
//
// Level is set once at start-up from FERRY_LOG_LEVEL (trace|debug|info|warn|error|off;
// default info) or by SetLogLevel(). Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace ferry {

// Applies FERRY_LOG_LEVEL from the environment once; later calls are no-ops.
void InitLoggingFromEnv();
// Sets the level by name; unknown names leave it unchanged and return false.
bool SetLogLevel(std::string_view level);

}  // namespace ferry

#define FERRY_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define FERRY_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define FERRY_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define FERRY_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define FERRY_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
