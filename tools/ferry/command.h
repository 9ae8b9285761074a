// The `ferry` CLI's subcommands register themselves here, one file each, so that adding a
// command never touches main.cc.
//
//   // tools/ferry/hello_command.cc
//   FERRY_REGISTER_COMMAND(hello, "greet", "Prints a greeting",
//       [](CLI::App& cmd) -> ferry::cli::Runner {
//         auto name = std::make_shared<std::string>("world");
//         cmd.add_option("--name", *name, "Who to greet");
//         return [name] { fmt::print("hello {}\n", *name); return 0; };
//       });
//
// A path with spaces ("bench transfer") nests the command under a parent ("bench"),
// created on first use. The runner's return value is the process exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace ferry::cli {

using Runner = std::function<int()>;
using CommandSetup = std::function<Runner(CLI::App& cmd)>;

// Registers a command; returns true (for static initialisation).
bool RegisterCommand(const std::string& path, const std::string& description, CommandSetup setup);

// Builds the CLI, parses argv and runs the chosen command. Returns the exit code.
int RunMain(int argc, char** argv);

}  // namespace ferry::cli

#define FERRY_REGISTER_COMMAND(id, path, description, setup) \
  static const bool ferry_cli_registered_##id =              \
      ::ferry::cli::RegisterCommand(path, description, setup)
