#include "command.h"

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "common/log.h"

namespace ferry::cli {
namespace {

struct Entry {
  std::string path;
  std::string description;
  CommandSetup setup;
};

std::vector<Entry>& Entries() {
  static std::vector<Entry> entries;
  return entries;
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::istringstream in(path);
  for (std::string p; in >> p;) parts.push_back(p);
  return parts;
}

}  // namespace

bool RegisterCommand(const std::string& path, const std::string& description, CommandSetup setup) {
  Entries().push_back({path, description, std::move(setup)});
  return true;
}

int RunMain(int argc, char** argv) {
  InitLoggingFromEnv();
  CLI::App app{"ferry: KV cache transfer engine, serving engine and disaggregation proxy"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.parse_complete_callback([&] {
    if (!log_level.empty()) SetLogLevel(log_level);
  });

  // Sort so that parents are created before their children regardless of link order.
  auto entries = Entries();
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  std::map<std::string, CLI::App*> nodes;
  std::vector<std::pair<CLI::App*, Runner>> runners;
  for (const auto& e : entries) {
    CLI::App* parent = &app;
    auto parts = SplitPath(e.path);
    std::string prefix;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      prefix += (prefix.empty() ? "" : " ") + parts[i];
      auto it = nodes.find(prefix);
      if (it == nodes.end()) {
        CLI::App* node = parent->add_subcommand(parts[i], parts[i] + " commands");
        node->require_subcommand(1);
        it = nodes.emplace(prefix, node).first;
      }
      parent = it->second;
    }
    CLI::App* cmd = parent->add_subcommand(parts.back(), e.description);
    nodes[e.path] = cmd;
    runners.emplace_back(cmd, e.setup(*cmd));
  }

  // vLLM spells --tensor-parallel-size `-tp`, a multi-letter single-dash flag CLI11 cannot
  // declare: `ferry serve -tp N` (or -tp=N) reads as --tensor-parallel-size N.
  std::vector<std::string> args(argv + 1, argv + argc);
  bool rewritten = false;
  if (!args.empty() && args[0] == "serve") {
    for (std::string& a : args) {
      if (a == "--") break;
      if (a == "-tp" || a.rfind("-tp=", 0) == 0) {
        a = "--tensor-parallel-size" + a.substr(3);
        rewritten = true;
      }
    }
  }
  try {
    if (rewritten) {
      app.name(argv[0]);
      std::reverse(args.begin(), args.end());  // CLI11 takes the vector last argument first
      app.parse(args);
    } else {
      app.parse(argc, argv);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [cmd, run] : runners) {
    if (cmd->parsed()) return run();
  }
  return 1;
}

}  // namespace ferry::cli
